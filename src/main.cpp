// The `batchq` program: one executable, several commands (SPEC §9). The
// command line lives in src/cli; the node's wiring in cluster/.
#include "src/cli/cli.hpp"

int main(int argc, char** argv) {
  return batchq::cli::run(argc, argv);
}
