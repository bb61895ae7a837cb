#include <malloc.h>

#include "app/cli.h"

int main(int argc, char** argv) {
  // glibc gives the free top of a thread's heap back to the kernel (madvise) as soon as it passes
  // trim_threshold (128 KB, or twice the last freed mmapped chunk's size). The fetch workers free a
  // ~21 KB page and its parse buffers per extraction, so their arenas' tops crossed it about once
  // per extraction: one madvise, the TLB shootdown IPIs and page faults to fault the memory back
  // in (~5 % of the full flow's CPU). Fixed thresholds keep up to 16 MB free per heap top; blocks of
  // 4 MB and more still get their own mapping (returned on free). Setting either also stops glibc's
  // dynamic raising of the mmap threshold, so both are set.
  mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
  mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
  return apilake::run_cli(argc, argv);
}
