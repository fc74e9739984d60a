//! Fixtures for the integration tests, one file per concern; use with `mod support;` and
//! `use support::*;` (everything is re-exported here).
//!
//! - `tools`: which outside programs a test needs ([`require_all`], [`require`] with a [`Tool`],
//!   [`require_tool`]) and the one rule when one is missing ([`skip_or_fail`], defined in
//!   `campush::testing`): skip loudly, or fail under `CAMPUSH_REQUIRE_TOOLS=1` (CI).
//! - `nginx`: [`Nginx`], a private nginx-rtmp on a free loopback port recording every publish,
//!   with an optional TLS front ([`Nginx::start_tls`], [`TlsFront`]); [`free_port`];
//!   [`ffmpeg_publish_forever`], another publisher to hold a key.
//! - `clips`: H.264 clips made once with ffmpeg + libx264 and cached under the target dir
//!   ([`Clip`], [`clip_720p_slices_aud`], ...), and NAL helpers ([`annexb_nals`], [`NalCounts`]).
//! - `recordings`: what the server recorded as ffprobe and ffmpeg see it ([`probe_recording`],
//!   [`Recording::assert_matches`] against the clip pushed, [`strictly_increasing`]).
//! - `runs`: processes with bounded waits: [`run_campush`], [`run_bounded`] (output captured),
//!   [`Campush`] (in the background from a config file), [`Background`], [`ffprobe`] and
//!   [`ffprobe_video`], [`wait_child`], [`poll_until`], [`wait_until`], [`signal`].
//! - [`throttling_proxy`], a link slower than the stream on loopback ([`Buffer`]): from
//!   `campush::testing::throttle`, which `examples/throttle.rs` (the lag benchmark's proxy)
//!   runs too.
//! - `standin`: the stand-in rpicam-vid as a camera on `PATH` ([`StandIn`]), [`python3_present`],
//!   [`group_members`].
//!
//! Imports run one way: `tools` and `runs` use nothing else here; `clips` uses `runs`;
//! `recordings` uses `clips` and `runs`; `nginx` uses `tools` and `runs`; `standin` uses
//! `tools`.
#![allow(dead_code)] // each test binary uses its own subset

mod clips;
mod nginx;
mod recordings;
mod runs;
mod standin;
mod tools;

// Each test binary uses its own subset of what is re-exported.
#[allow(unused_imports)]
pub use campush::testing::throttle::{throttling_proxy, Buffer};
#[allow(unused_imports)]
pub use {clips::*, nginx::*, recordings::*, runs::*, standin::*, tools::*};
