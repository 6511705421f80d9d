/* The header on its own, as strict C11. */
#include <ocicas.h>

int main(void) {
    ocicas_engine *engine = NULL;
    ocicas_status status = ocicas_engine_open(NULL, 0, &engine);
    return status == OCICAS_ERR_INVALID_ARGUMENT && engine == NULL ? 0 : 1;
}
