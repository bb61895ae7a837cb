// The command line: `apilake up`, `apilake replay`, `apilake sources validate`, `apilake query`.
#pragma once

namespace apilake {
int run_cli(int argc, char** argv);
}
