// The system SQLite (Debian: libsqlite3-dev), called directly for the raw anchor.
#include <sqlite3.h>
