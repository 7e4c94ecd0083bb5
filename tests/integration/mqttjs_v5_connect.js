// Connects MQTT.js in MQTT 5 mode once and prints the CONNACK it received as
// JSON ({reasonCode, sessionPresent, properties}), whether the broker accepted
// or refused the connection, then exits. Bounded by --timeout.
//
//   node mqttjs_v5_connect.js --port P --client-id c --keepalive 60 \
//        --session-expiry 3600 --request-response-information true
//   node mqttjs_v5_connect.js --port P --auth-secret S   (the shardmq-challenge method)
'use strict';
const crypto = require('crypto');
const mqtt = require('mqtt');

const args = { timeout: 10000, keepalive: 60, clientId: undefined, sessionExpiry: undefined,
               requestResponseInformation: undefined, authSecret: undefined };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const [key, value] = [argv[i], argv[i + 1]];
  if (key === '--port') args.port = Number(value);
  else if (key === '--client-id') args.clientId = value;
  else if (key === '--keepalive') args.keepalive = Number(value);
  else if (key === '--session-expiry') args.sessionExpiry = Number(value);
  else if (key === '--request-response-information') args.requestResponseInformation = value === 'true';
  else if (key === '--timeout') args.timeout = Number(value);
  else if (key === '--auth-secret') args.authSecret = value;
  else { console.error(`unknown argument ${key}`); process.exit(2); }
}

const properties = {};
if (args.sessionExpiry !== undefined) properties.sessionExpiryInterval = args.sessionExpiry;
if (args.requestResponseInformation !== undefined) {
  properties.requestResponseInformation = args.requestResponseInformation;
}
const METHOD = 'shardmq-challenge';
if (args.authSecret !== undefined) properties.authenticationMethod = METHOD;
const client = mqtt.connect({
  host: '127.0.0.1', port: args.port, protocolVersion: 5, clientId: args.clientId,
  keepalive: args.keepalive, properties, reconnectPeriod: 0, connectTimeout: 5000,
});
const timer = setTimeout(() => { console.log(JSON.stringify({ why: 'timeout' })); process.exit(1); },
                         args.timeout);

// The challenge: answer the broker's nonce with hex HMAC-SHA256(secret, nonce).
client.handleAuth = (packet, callback) => {
  const nonce = packet.properties.authenticationData;
  const answer = crypto.createHmac('sha256', args.authSecret).update(nonce).digest('hex');
  callback(null, { cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: METHOD,
                                                   authenticationData: Buffer.from(answer) } });
};

client.on('packetreceive', (packet) => {
  if (packet.cmd !== 'connack') return;
  clearTimeout(timer);
  console.log(JSON.stringify({ reasonCode: packet.reasonCode, sessionPresent: packet.sessionPresent,
                               properties: packet.properties || {} }));
  client.end(true, {}, () => process.exit(0));
});
// A refusal also arrives as an 'error'; the CONNACK above already said it.
client.on('error', () => {});
