// The local http-01 listener of netd's tests: answers every GET with one fixed body. Run inside a
// test namespace: `node --import tsx challenge-listener.ts ADDRESS PORT BODY`.
// Not python's http.server: it calls getfqdn() on its bind address before listening, and in a
// namespace whose default route leads to a router that drops DNS, that reverse lookup waits out
// the resolver's timeouts (10 s here) before the port opens.
import { createServer } from 'node:http';

const [address, port, body] = process.argv.slice(2);
const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`${body}\n`);
});
server.listen(Number(port), address, () => console.log(`listening on ${address}:${port}`));
