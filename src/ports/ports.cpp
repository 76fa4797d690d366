// Compiles ports.hpp on its own (the interfaces have no out-of-line code).
#include "src/ports/ports.hpp"
