// What the MariaDB/MySQL clients and server answer with, shared by the source (dumps) and the
// restore loader: error numbers (https://mariadb.com/kb/en/mariadb-error-code-reference/) and limits.

/** The largest packet the clients accept; the default (16 MiB) would fail on a row bigger than that. */
export const MAX_ALLOWED_PACKET = '1073741824';
export const CONNECT_TIMEOUT_SECONDS = 20;
export const ER_DBACCESS_DENIED = 1044;
export const ER_ACCESS_DENIED = 1045;
export const ER_NONEXISTING_GRANT = 1133;
export const ER_TABLEACCESS_DENIED = 1142;
export const ER_NO_SUCH_TABLE = 1146;
export const ER_SPECIFIC_ACCESS_DENIED = 1227;
export const ER_CANNOT_USER = 1396;
/** The client could not reach or lost the server (socket, TCP, gone away, lost during query). */
export const CLIENT_CONNECTION_ERRORS: ReadonlySet<number> = new Set([2002, 2003, 2005, 2006, 2013]);
