/* The C API as installed: `pkg-config --cflags smolvlm` puts its include directory on the path. */
#include <smolvlm.h>
