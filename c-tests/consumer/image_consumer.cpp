// image_consumer.c's runtime steps from C++ against the installed package, typed results only:
// resolve an image built by umoci for a platform, read Env and Cmd, read each layer as its tar
// while hashing it with the digester (which must give the DiffID), and commit each tar through
// a writer with that digest. (image_consumer.c also compares the tars with umoci's tree.)
// usage: image_consumer_cpp LAYOUT REF OS ARCHITECTURE SCRATCH_LAYOUT
#include <ocicas.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

void check(ocicas_status status, const char *what) {
    if (status != OCICAS_OK) {
        throw std::runtime_error(std::string(what) + ": " + ocicas_status_name(status) + ": " +
                                 ocicas_last_error_message());
    }
}

void require(bool condition, const char *what) {
    if (!condition) throw std::runtime_error(std::string("check failed: ") + what);
}

struct EngineClose {
    void operator()(ocicas_engine *engine) const { ocicas_engine_close(engine); }
};
struct ImageFree {
    void operator()(ocicas_image *image) const { ocicas_image_free(image); }
};
struct ReaderFree {
    void operator()(ocicas_layer_reader *reader) const { ocicas_layer_reader_free(reader); }
};
struct DigesterFree {
    void operator()(ocicas_digester *digester) const { ocicas_digester_free(digester); }
};
struct WriterClose {
    void operator()(ocicas_writer *writer) const { ocicas_writer_close(writer); }
};
struct StringFree {
    void operator()(char *text) const { ocicas_string_free(text); }
};
using Engine = std::unique_ptr<ocicas_engine, EngineClose>;
using String = std::unique_ptr<char, StringFree>;

std::vector<std::string> strings(const ocicas_string_list *list) {
    std::vector<std::string> items;
    for (size_t i = 0; i < ocicas_string_list_count(list); i++) items.emplace_back(ocicas_string_list_get(list, i));
    return items;
}

Engine open(const char *path, uint32_t flags) {
    ocicas_engine *engine = nullptr;
    check(ocicas_engine_open(path, flags, &engine), path);
    return Engine(engine);
}

struct Tar {
    std::vector<uint8_t> bytes;
    std::string digest;  // as the digester computed it
};

// Layer `index` as its tar, hashed by the digester on the way, which must give its DiffID.
Tar read_layer(const ocicas_engine *engine, const ocicas_image *image, size_t index) {
    const ocicas_descriptor *layer = ocicas_image_layer(image, index);
    const char *diff_id = ocicas_string_list_get(ocicas_config_diff_ids(ocicas_image_parsed_config(image)), index);
    ocicas_layer_reader *raw_reader = nullptr;
    check(ocicas_layer_reader_open(engine, ocicas_descriptor_media_type(layer), ocicas_descriptor_digest(layer),
                                   ocicas_descriptor_size(layer), diff_id, &raw_reader),
          "ocicas_layer_reader_open");
    std::unique_ptr<ocicas_layer_reader, ReaderFree> reader(raw_reader);
    ocicas_digester *raw_digester = nullptr;
    check(ocicas_digester_new("sha256", &raw_digester), "ocicas_digester_new");
    std::unique_ptr<ocicas_digester, DigesterFree> digester(raw_digester);
    Tar tar;
    uint8_t chunk[65536];
    size_t n = 0;
    do {
        check(ocicas_layer_reader_read(reader.get(), chunk, sizeof chunk, &n), "ocicas_layer_reader_read");
        check(ocicas_digester_update(digester.get(), chunk, n), "ocicas_digester_update");
        tar.bytes.insert(tar.bytes.end(), chunk, chunk + n);
    } while (n > 0);
    char *digest = nullptr;
    check(ocicas_digester_finish(digester.get(), &digest), "ocicas_digester_finish");
    tar.digest = String(digest).get();
    require(tar.digest == diff_id, "tar digest == DiffID");
    return tar;
}

// Commits the tar through a writer, expecting the digest the digester computed.
void commit(const ocicas_engine *scratch, const Tar &tar) {
    const char *expected = tar.digest.c_str();
    ocicas_writer *raw_writer = nullptr;
    auto size = static_cast<int64_t>(tar.bytes.size());
    check(ocicas_writer_open(scratch, expected, size, expected, &raw_writer), "ocicas_writer_open");
    std::unique_ptr<ocicas_writer, WriterClose> writer(raw_writer);
    check(ocicas_writer_write(writer.get(), tar.bytes.data(), tar.bytes.size()), "ocicas_writer_write");
    char *committed = nullptr;
    check(ocicas_writer_commit(writer.get(), size, expected, nullptr, &committed), "ocicas_writer_commit");
    require(tar.digest == String(committed).get(), "the committed digest is the digester's");
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: %s LAYOUT REF OS ARCHITECTURE SCRATCH_LAYOUT\n", argv[0]);
        return 2;
    }
    try {
        Engine engine = open(argv[1], 0);
        Engine scratch = open(argv[5], OCICAS_OPEN_CREATE);
        ocicas_platform platform = {argv[3], argv[4], nullptr};
        ocicas_image *raw_image = nullptr;
        check(ocicas_image_resolve(engine.get(), argv[2], &platform, &raw_image), "ocicas_image_resolve");
        std::unique_ptr<ocicas_image, ImageFree> image(raw_image);
        const ocicas_config *config = ocicas_image_parsed_config(image.get());
        std::vector<std::string> env = strings(ocicas_config_env(config));
        bool has_foo = false;
        for (const std::string &item : env) has_foo = has_foo || item == "FOO=bar";
        require(has_foo, "Env has FOO=bar");
        require(strings(ocicas_config_cmd(config)) == std::vector<std::string>{"/bin/sh"}, "Cmd is /bin/sh");
        size_t layers = ocicas_image_layer_count(image.get());
        require(layers > 0, "the image has layers");
        for (size_t i = 0; i < layers; i++) {
            commit(scratch.get(), read_layer(engine.get(), image.get(), i));
        }
        std::printf("C++: image %s for %s/%s: %zu layers read, checked and committed\n", argv[2], argv[3], argv[4],
                    layers);
    } catch (const std::exception &error) {
        std::fprintf(stderr, "%s\n", error.what());
        return 1;
    }
    return 0;
}
