// start.mjs --port=N - Portkey's gateway from npm (build/start-server.js of
// @portkey-ai/gateway, as published) for tests/bench/bench.sh, held to
// 127.0.0.1: the package listens on every interface and has no flag for
// the address, so the one listen() it makes is given the loopback host.
import net from 'node:net';

const arg = process.argv.find((a) => a.startsWith('--port='));
if (!arg) {
  console.error('usage: node start.mjs --port=N [--headless]');
  process.exit(2);
}
const port = Number(arg.slice('--port='.length));
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (p, ...rest) {
  if (p === port && (rest.length === 0 || typeof rest[0] !== 'string'))
    rest.shift();
  if (p === port)
    return listen.call(this, p, '127.0.0.1', ...rest.filter((r) => typeof r === 'function'));
  return listen.call(this, p, ...rest);
};
await import(new URL('./node_modules/@portkey-ai/gateway/build/start-server.js', import.meta.url));
