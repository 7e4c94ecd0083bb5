// Drives MQTT.js for the integration tests: subscribes, publishes, and prints
// what it received as JSON on stdout, then exits. Bounded by --timeout.
//
//   node mqttjs_client.js --port P --protocol-version 4 --subscribe 'a/#' --qos 1 \
//        --publish a/b=hello --expect 1 --timeout 10000
'use strict';
const mqtt = require('mqtt');

const args = { subscribe: [], publish: [], qos: 0, expect: 0, timeout: 10000,
               protocolVersion: 4, clean: true, clientId: undefined, retain: false,
               connectProperties: undefined, publishProperties: undefined, subscribeOptions: {} };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const [key, value] = [argv[i], argv[i + 1]];
  if (key === '--port') args.port = Number(value);
  else if (key === '--protocol-version') args.protocolVersion = Number(value);
  else if (key === '--subscribe') args.subscribe.push(value);
  else if (key === '--publish') args.publish.push(value);
  else if (key === '--qos') args.qos = Number(value);
  else if (key === '--expect') args.expect = Number(value);
  else if (key === '--timeout') args.timeout = Number(value);
  else if (key === '--client-id') args.clientId = value;
  else if (key === '--clean') args.clean = value === 'true';
  else if (key === '--retain') args.retain = value === 'true';
  // MQTT 5: JSON objects in MQTT.js's own property names.
  else if (key === '--connect-properties') args.connectProperties = JSON.parse(value);
  else if (key === '--publish-properties') args.publishProperties = JSON.parse(value);
  else if (key === '--subscribe-options') args.subscribeOptions = JSON.parse(value);
  else { console.error(`unknown argument ${key}`); process.exit(2); }
}

const received = [];
const client = mqtt.connect({
  host: '127.0.0.1', port: args.port, protocolVersion: args.protocolVersion,
  // MQTT 3.1 has its own protocol name.
  protocolId: args.protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
  clientId: args.clientId, clean: args.clean, reconnectPeriod: 0, connectTimeout: 5000,
  properties: args.connectProperties,
});
const timer = setTimeout(() => finish('timeout'), args.timeout);

function finish(why) {
  clearTimeout(timer);
  console.log(JSON.stringify({ why, received }));
  client.end(false, {}, () => process.exit(0));
}

client.on('error', (error) => { console.log(JSON.stringify({ why: 'error', error: String(error), received })); process.exit(1); });
client.on('message', (topic, payload, packet) => {
  const item = { topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain };
  if (packet.properties) {
    const props = { ...packet.properties };
    if (Buffer.isBuffer(props.correlationData)) props.correlationData = props.correlationData.toString();
    item.properties = props;
  }
  received.push(item);
  if (args.expect && received.length >= args.expect) finish('done');
});
client.on('connect', (connack) => {
  const afterSubscribe = () => {
    for (const item of args.publish) {
      const [topic, payload] = item.split('=');
      const options = { qos: args.qos, retain: args.retain };
      if (args.publishProperties) options.properties = args.publishProperties;
      client.publish(topic, payload, options);
    }
    if (!args.expect) client.end(false, {}, () => { clearTimeout(timer); console.log(JSON.stringify({ why: 'published', sessionPresent: connack.sessionPresent, received })); process.exit(0); });
  };
  if (args.subscribe.length) {
    client.subscribe(args.subscribe, { qos: args.qos, ...args.subscribeOptions }, (error, granted) => {
      if (error) { console.log(JSON.stringify({ why: 'suback-error', error: String(error) })); process.exit(1); }
      console.error(JSON.stringify({ granted }));
      afterSubscribe();
    });
  } else {
    afterSubscribe();
  }
});
