// ocicas from C++17: the C header, with owning wrappers and exceptions of the program's own.
#include <ocicas.h>

#include <cstdint>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>

// Every failing call becomes an exception carrying its status and the thread's message.
struct ocicas_error : std::runtime_error {
    ocicas_status status;
    ocicas_error(ocicas_status s, const std::string &call)
        : std::runtime_error(call + ": " + ocicas_last_error_message()), status(s) {}
};

static void check(ocicas_status status, const char *call) {
    if (status != OCICAS_OK) throw ocicas_error(status, call);
}

struct engine_closer {
    void operator()(ocicas_engine *engine) const { ocicas_engine_close(engine); }
};
struct writer_closer {
    void operator()(ocicas_writer *writer) const { ocicas_writer_close(writer); }
};
using engine_ptr = std::unique_ptr<ocicas_engine, engine_closer>;
using writer_ptr = std::unique_ptr<ocicas_writer, writer_closer>;

// Takes a string returned by ocicas, frees it.
static std::string take(char *text) {
    std::string copy(text);
    ocicas_string_free(text);
    return copy;
}

int main(int argc, char **argv) {
    const std::string layout = argc > 1 ? argv[1] : "cpp-layout";
    try {
        ocicas_engine *raw = nullptr;
        check(ocicas_engine_open(layout.c_str(), OCICAS_OPEN_CREATE, &raw), "open");
        engine_ptr engine(raw);

        char *digest = nullptr;
        const std::string hello = "hello from C++";
        check(ocicas_blob_put(engine.get(), reinterpret_cast<const uint8_t *>(hello.data()), hello.size(), &digest),
              "put");
        const std::string blob = take(digest);

        ocicas_writer *raw_writer = nullptr;
        check(ocicas_writer_open(engine.get(), "cpp-upload", OCICAS_SIZE_UNKNOWN, nullptr, &raw_writer), "writer");
        writer_ptr writer(raw_writer);
        const std::string config = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})";
        check(ocicas_writer_write(writer.get(), reinterpret_cast<const uint8_t *>(config.data()), config.size()),
              "write");
        char *committed = nullptr;
        check(ocicas_writer_commit(writer.get(), static_cast<int64_t>(config.size()), nullptr, nullptr, &committed), "commit");
        std::cout << "committed " << take(committed) << "\n";

        try {
            check(ocicas_blob_delete(engine.get(), "sha256:not-a-digest"), "delete");
            return 1;
        } catch (const ocicas_error &error) {
            if (error.status != OCICAS_ERR_INVALID_ARGUMENT) throw;
            std::cout << "refused as expected: " << error.what() << "\n";
        }
        std::cout << "stored " << blob << "\n";
        return 0;
    } catch (const std::exception &error) {
        std::cerr << error.what() << "\n";
        return 1;
    }
}
