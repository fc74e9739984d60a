// node-media-server 2.x's RTMP session behind a listener of our own on 127.0.0.1:PORT, with none
// of its HTTP, relay or transcoding parts. Prints "listening" once bound and "play PATH" when a
// player asks for a stream (tests/servers/mod.rs waits for both).
//
// Usage: NODE_PATH=DIR/node/node_modules node node_media_server.js PORT
'use strict';
const net = require('net');
const Logger = require('node-media-server/src/node_core_logger');
const NodeRtmpSession = require('node-media-server/src/node_rtmp_session');
const context = require('node-media-server/src/node_core_ctx');

const port = Number(process.argv[2]);
// bin/app.js's defaults for the RTMP side.
const config = {
  rtmp: { port, chunk_size: 60000, gop_cache: true, ping: 30, ping_timeout: 60 },
  logType: 3, // debug
};
Logger.setLogType(config.logType);
context.nodeEvent.on('prePlay', (id, path) => console.log(`play ${path}`));
const server = net.createServer((socket) => new NodeRtmpSession(config, socket).run());
server.listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));
process.on('SIGTERM', () => process.exit(0));
