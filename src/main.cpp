#include "app/cli.h"

int main(int argc, char** argv) { return apilake::run_cli(argc, argv); }
