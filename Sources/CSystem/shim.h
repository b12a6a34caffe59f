// What Swift's Glibc module leaves out: extended attributes (the spool keeps a task's
// record in an attribute of its data file). Declarations only; libc provides them.
#include <sys/xattr.h>
