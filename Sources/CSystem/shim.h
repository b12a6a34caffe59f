// What Swift's Glibc module leaves out. Declarations only; libc provides them.

// Extended attributes: the records of a round-1 spool lived in one (see RoundOneSpool).
#include <sys/xattr.h>

// renameat2 (glibc 2.28, behind _GNU_SOURCE): a rename that never replaces its target,
// for recycling spool files under fresh names.
int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);
#define CSYSTEM_RENAME_NOREPLACE 1

// sync_file_range (behind _GNU_SOURCE): starts the write-back of a range of a file without
// waiting for it, so that a large upload's sync at commit waits only for its tail.
#include <stdint.h>
int sync_file_range(int fd, int64_t offset, int64_t nbytes, unsigned int flags);
#define CSYSTEM_SYNC_FILE_RANGE_WRITE 2

// O_TMPFILE (behind _GNU_SOURCE, and a macro of other macros, which Swift does not
// import): a file with no name yet in a directory, named later with linkat. Linux's
// generic value of __O_TMPFILE (x86_64 and arm64 alike).
#include <fcntl.h>
static const int CSYSTEM_O_TMPFILE = 020000000 | O_DIRECTORY;
