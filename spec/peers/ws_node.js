// A Node `ws` peer for spec/websockets_spec.lua; same modes and commands as
// ws_gorilla.go:
//   node ws_node.js server HOST:PORT [z]   echo server on /ws
//   node ws_node.js client URL [z]         checklist, "ok <step>" lines
const { WebSocket, WebSocketServer } = require('ws');
const [mode, where, zflag] = process.argv.slice(2);
const z = zflag === 'z';

function fail(msg) { console.log('FAIL ' + msg); process.exit(1); }

function payload(n, text) {
  if (text) {
    const parts = ['a', 'é', '€', '𝄞', 'z'];
    let b = Buffer.alloc(0), chunks = [], len = 0, i = 0;
    while (len < n) {
      let p = Buffer.from(parts[i++ % parts.length]);
      if (len + p.length > n) p = Buffer.from('a');
      chunks.push(p); len += p.length;
    }
    return Buffer.concat(chunks);
  }
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + Math.floor(i / 251)) & 255;
  return b;
}

if (mode === 'server') {
  const [host, port] = where.split(':');
  const wss = new WebSocketServer({ host, port: +port, path: '/ws', perMessageDeflate: z, maxPayload: 64 << 20,
    handleProtocols: (ps) => (ps.has('echo') ? 'echo' : false) });
  wss.on('connection', (ws, req) => {
    ws.on('pong', (d) => ws.send('got-pong:' + d.toString()));
    ws.on('message', (m, isBinary) => {
      const s = isBinary ? null : m.toString();
      if (s === 'ping-me') return ws.ping('srv');
      if (s && s.startsWith('close-me:')) return ws.close(+s.slice(9), 'done');
      if (s === 'ext?') return ws.send('ext:' + (req.headers['sec-websocket-extensions'] || ''));
      ws.send(m, { binary: isBinary });
    });
  });
  wss.on('listening', () => console.log('listening'));
} else if (mode === 'client') {
  const ws = new WebSocket(where, ['nope', 'echo'], { perMessageDeflate: z, maxPayload: 64 << 20 });
  const inbox = [], waiters = [];
  ws.on('message', (m, isBinary) => {
    const item = { m, isBinary };
    if (waiters.length) waiters.shift()(item); else inbox.push(item);
  });
  const next = () => new Promise((res) => { if (inbox.length) res(inbox.shift()); else waiters.push(res); });
  const pongs = [];
  ws.on('pong', (d) => pongs.push(d.toString()));
  ws.on('error', (e) => fail('error ' + e.message));
  ws.on('open', async () => {
    if (ws.protocol !== 'echo') fail('subprotocol ' + ws.protocol);
    if (z !== (ws.extensions || '').includes('permessage-deflate')) fail('extensions ' + ws.extensions);
    console.log('ok handshake ' + ws.extensions);
    for (const n of [0, 1, 16, 32, 33, 125, 126, 1000, 65535, 65536, 100000, (3 << 20) + 7]) {
      for (const text of [true, false]) {
        const p = payload(n, text);
        ws.send(text ? p.toString() : p, { binary: !text });
        const { m, isBinary } = await next();
        if (isBinary === text || !Buffer.from(m).equals(p)) fail('echo ' + n + ' text=' + text + ' len ' + m.length);
      }
    }
    // fragments: ws sends one frame per send({fin:false})
    ws.send('frag-', { fin: false });
    ws.send('men', { fin: false });
    ws.send('ted', { fin: true });
    let r = await next();
    if (r.m.toString() !== 'frag-mented') fail('fragmented ' + r.m.toString());
    console.log('ok echo');
    ws.ping('p1');
    ws.send('after-ping');
    r = await next();
    if (r.m.toString() !== 'after-ping' || pongs[0] !== 'p1') fail('ping ' + pongs);
    console.log('ok ping');
    ws.send('ping-me');
    r = await next();
    if (r.m.toString() !== 'got-pong:srv') fail('server ping ' + r.m.toString());
    console.log('ok server-ping');
    ws.on('close', (code, reason) => {
      if (code !== 4001) fail('close echo ' + code);
      console.log('ok close');
      process.exit(0);
    });
    ws.close(4001, 'bye');
  });
} else {
  fail('usage');
}
