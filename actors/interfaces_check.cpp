// Compiles messages/interfaces.hpp and type_ids.hpp on their own.
#include "messages/interfaces.hpp"
#include "messages/type_ids.hpp"
