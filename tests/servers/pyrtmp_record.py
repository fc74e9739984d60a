"""pyrtmp's SimpleRTMPController on 127.0.0.1:PORT, recording each publish to DIR/NAME.flv.

Prints "listening on 127.0.0.1:PORT" once bound and "recorded NAME" once a recording is closed
(tests/servers/mod.rs waits for both). The recorder follows pyrtmp's own README example.

Usage: python pyrtmp_record.py PORT DIR
"""
import asyncio
import os
import sys

from pyrtmp.flv import FLVFileWriter, FLVMediaType
from pyrtmp.rtmp import RTMPProtocol, SimpleRTMPController


class Recorder(SimpleRTMPController):
    def __init__(self, directory):
        self.directory = directory
        super().__init__()

    async def on_ns_publish(self, session, message):
        name = os.path.basename(message.publishing_name)
        session.state = FLVFileWriter(output=os.path.join(self.directory, name + ".flv"))
        session.state.name = name
        await super().on_ns_publish(session, message)

    async def on_metadata(self, session, message):
        session.state.write(0, message.to_raw_meta(), FLVMediaType.OBJECT)
        await super().on_metadata(session, message)

    async def on_video_message(self, session, message):
        session.state.write(message.timestamp, message.payload, FLVMediaType.VIDEO)
        await super().on_video_message(session, message)

    async def on_audio_message(self, session, message):
        session.state.write(message.timestamp, message.payload, FLVMediaType.AUDIO)
        await super().on_audio_message(session, message)

    async def cleanup(self, session):
        # Called once per connection, however it ended.
        if isinstance(session.state, FLVFileWriter):
            session.state.close()
            print(f"recorded {session.state.name}", flush=True)
        await super().cleanup(session)


async def main(port, directory):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: RTMPProtocol(controller=Recorder(directory)), "127.0.0.1", port
    )
    print(f"listening on 127.0.0.1:{port}", flush=True)
    await server.serve_forever()


asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
