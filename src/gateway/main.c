/* keymeld-gateway — entry point (being built: issue 5). */
#include <stdio.h>

int main(void) {
    fprintf(stderr, "keymeld-gateway: not built yet\n");
    return 2;
}
