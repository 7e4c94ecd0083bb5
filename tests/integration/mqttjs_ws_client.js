// MQTT.js over WebSocket for the integration tests: connects to --url
// (ws:// or wss://, with --ca for wss), subscribes to ws/#, publishes
// --count small messages and one --big byte message to itself, and prints
// what came back as JSON on stdout. Bounded by --timeout.
//
//   node mqttjs_ws_client.js --url ws://127.0.0.1:P/mqtt --protocol-version 5 \
//        --count 20 --big 200000 --client-id js-ws
'use strict';
const fs = require('fs');
const mqtt = require('mqtt');

const args = { protocolVersion: 4, count: 10, big: 100000, timeout: 15000, clientId: undefined };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const [key, value] = [argv[i], argv[i + 1]];
  if (key === '--url') args.url = value;
  else if (key === '--ca') args.ca = fs.readFileSync(value);
  else if (key === '--protocol-version') args.protocolVersion = Number(value);
  else if (key === '--count') args.count = Number(value);
  else if (key === '--big') args.big = Number(value);
  else if (key === '--timeout') args.timeout = Number(value);
  else if (key === '--client-id') args.clientId = value;
  else { console.error(`unknown argument ${key}`); process.exit(2); }
}

const options = {
  protocolVersion: args.protocolVersion, clientId: args.clientId, reconnectPeriod: 0,
  connectTimeout: 5000,
};
if (args.ca) {
  // MQTT.js hands TLS options to the ws library for wss:// in Node.
  options.ca = args.ca;
  options.wsOptions = { ca: args.ca };
}
const client = mqtt.connect(args.url, options);
const received = [];
const expected = args.count + 1;
const timer = setTimeout(() => finish('timeout'), args.timeout);

function finish(why) {
  clearTimeout(timer);
  console.log(JSON.stringify({ why, received }));
  client.end(false, {}, () => process.exit(0));
}

client.on('error', (error) => {
  console.log(JSON.stringify({ why: 'error', error: String(error), received }));
  process.exit(1);
});
client.on('message', (topic, payload, packet) => {
  // The big payload is checked by length and a checksum-like sample, not echoed.
  let sum = 0;
  for (const byte of payload) sum = (sum + byte) % 1000003;
  received.push({ topic, length: payload.length, sum, head: payload.subarray(0, 16).toString(),
                  qos: packet.qos });
  if (received.length >= expected) finish('done');
});
client.on('connect', (connack) => {
  client.subscribe('ws/#', { qos: 1 }, (error, granted) => {
    if (error) { console.log(JSON.stringify({ why: 'suback-error', error: String(error) })); process.exit(1); }
    // Several small publishes back to back: MQTT.js writes them in one go.
    for (let i = 0; i < args.count; ++i) client.publish(`ws/small/${i}`, `m${i}`, { qos: i % 2 });
    const big = Buffer.alloc(args.big);
    for (let i = 0; i < big.length; ++i) big[i] = (i * 7) % 251;
    client.publish('ws/big', big, { qos: 1 });
  });
});
