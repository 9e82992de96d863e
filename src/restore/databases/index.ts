// The database loaders, by kind, and the helpers restore and drill use with them.
import { createMariadbLoader } from './mariadb.js';
import { createPostgresLoader } from './postgres.js';
import type { DatabaseConnection, DatabaseKind, DatabaseLoader } from './types.js';

export { compareRows, describeRowDifference } from './compare-rows.js';
export { checkSqliteFile, querySqliteScalar, type SqliteFileCheck } from './sqlite.js';
export type {
  DatabaseConnection,
  DatabaseKind,
  DatabaseLoader,
  LoadOptions,
  LoadReport,
  RowDifference,
} from './types.js';
export { DatabaseError } from './types.js';

const loaders = {
  mariadb: createMariadbLoader,
  postgres: createPostgresLoader,
} satisfies Record<DatabaseKind, (connection: DatabaseConnection) => DatabaseLoader>;

/** The loader for the connection's kind of server. Nothing is contacted until a method is called. */
export function createDatabaseLoader(connection: DatabaseConnection): DatabaseLoader {
  return loaders[connection.kind](connection);
}

/**
 * The database a `mariadb`/`postgres` component was dumped from: its name is `<source>.<database>`
 * with the database percent-encoded (so it holds no `.`). This is the `originalDatabase` that
 * {@link DatabaseLoader.countRows} needs to name MariaDB tables like the manifest does.
 */
export function databaseOfComponent(componentName: string): string {
  const encoded = componentName.slice(componentName.lastIndexOf('.') + 1);
  try {
    return decodeURIComponent(encoded);
  } catch {
    return encoded;
  }
}
