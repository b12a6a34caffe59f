// SQLite as Debian ships it (libsqlite3-dev 3.40.1).
#include <sqlite3.h>

// SQLITE_TRANSIENT is a cast of -1 to a function pointer, which Swift cannot import:
// "copy the bytes now", for values whose memory Swift may move.
static inline sqlite3_destructor_type CSQLite_transient(void) { return SQLITE_TRANSIENT; }
