// The header on its own, as C++17.
#include <ocicas.h>

int main() {
    ocicas_engine *engine = nullptr;
    ocicas_status status = ocicas_engine_open(nullptr, 0, &engine);
    ocicas_engine_close(engine);
    return status == OCICAS_ERR_INVALID_ARGUMENT && engine == nullptr ? 0 : 1;
}
