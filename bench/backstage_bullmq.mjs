// BullMQ side of bench/backstage_redis.lua (same shape): N no-op jobs,
// `add` with 200 in flight, then one Worker with concurrency C until N
// completed. node backstage_bullmq.mjs N C PORT
import { Queue, Worker } from 'bullmq';
const [N, C, PORT] = [+process.argv[2], +process.argv[3], +process.argv[4]];
const connection = { host: '127.0.0.1', port: PORT, maxRetriesPerRequest: null };
const q = new Queue('bullbench', { connection });
await q.obliterate({ force: true });
const opts = { removeOnComplete: true, removeOnFail: true };
let t0 = performance.now();
for (let i = 0; i < N; i += 200) {
  await Promise.all(Array.from({ length: Math.min(200, N - i) }, (_, j) => q.add('noop', { i: i + j }, opts)));
}
const add = N / ((performance.now() - t0) / 1e3);
let done = 0;
t0 = performance.now();
await new Promise((res) => {
  const w = new Worker('bullbench', async () => {}, { connection, concurrency: C });
  w.on('completed', () => { if (++done === N) { res(); w.close(); } });
});
const drain = N / ((performance.now() - t0) / 1e3);
console.log(`${add | 0} ${drain | 0}`);
await q.close();
process.exit(0);
