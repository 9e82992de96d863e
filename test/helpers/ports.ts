// A loopback port that nothing listens on (the OS picked it free a moment ago): for a server the
// test starts there itself, or as a dead endpoint that refuses connections.
import { createServer } from 'node:net';

export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('the OS gave no TCP port');
  return address.port;
}
