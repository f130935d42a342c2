// amqplib publishes without waiting and then closes the connection: the publishes still in its
// buffer are written around connection.close. A broker that resets the socket right after
// close-ok makes those writes fail (EPIPE / ECONNRESET) and amqplib emits 'error'.
// usage: node close_flush.js AMQP_URL [ROUNDS]; prints OK, or the error code.
const amqp = require('amqplib');

const url = process.argv[2];
const rounds = Number(process.argv[3] || 5);

(async () => {
  for (let round = 0; round < rounds; round++) {
    const conn = await amqp.connect(url);
    conn.on('error', (e) => {
      console.log('ERROR', e.code || e.message, 'round', round);
      process.exit(2);
    });
    const ch = await conn.createChannel();
    const body = Buffer.alloc(64 * 1024, 'x');
    for (let i = 0; i < 200; i++) ch.publish('', 'nowhere', body);
    await conn.close();
  }
  console.log('OK');
})().catch((e) => {
  console.log('FAILED', e.code || e.message);
  process.exit(1);
});
