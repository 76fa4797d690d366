// The one translation unit with CAF's unit-test engine and main().
#include "caf/test/unit_test_impl.hpp"
