export { withDatabaseName as databaseUrl } from '../../src/db/client.ts';
