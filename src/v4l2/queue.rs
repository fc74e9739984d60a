//! One V4L2 buffer queue (a capture queue, or one side of a memory-to-memory device): its
//! buffers, their memory mappings, and the queue/dequeue calls of the per-frame path.
//!
//! Owns: the buffers the driver allocated for one queue (`REQBUFS`), the `mmap`ings of their
//! planes (MMAP memory) or nothing (DMABUF memory: the fds belong to whoever exported them), a
//! fixed `v4l2_plane` scratch array for multi-planar calls, and which buffers are queued.
//!
//! Invariants:
//! - Single- and multi-planar queues share one code path: a multi-planar `v4l2_buffer` points at
//!   `self.planes`, which lives as long as the queue; payloads are `bytesused - data_offset` of
//!   plane 0 (all encoders and H.264 cameras emit one plane), starting at `data_offset`.
//! - The per-frame calls ([`Queue::dequeue`], [`Queue::queue_mmap`], [`Queue::queue_dmabuf`])
//!   allocate nothing.
//! - Drop never panics and releases in the only order the kernel accepts: `STREAMOFF` (returns
//!   every buffer to us), `munmap` every plane, then `REQBUFS(0)`; each step's error is ignored,
//!   because a device that went away (ENODEV) refuses them all and that is fine.
//!
//! Spec: "Streaming I/O (Memory Mapping)", "Streaming I/O (DMA buffer importing)",
//! "ioctl VIDIOC_QBUF, VIDIOC_DQBUF", "Buffers" (`struct v4l2_buffer`, `struct v4l2_plane`).

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use super::device::{BufType, Device};
use super::sys::{self, *};

/// One mmap-ed plane.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; the kernel's view of it is
// synchronised by QBUF/DQBUF, which go through `&mut Queue`.
unsafe impl Send for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; nothing borrows them past the queue.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// What a dequeued buffer carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dequeued {
    pub index: u32,
    pub flags: u32,
    pub sequence: u32,
    /// Payload bytes of plane 0 (after `data_offset`).
    pub bytesused: u32,
    pub data_offset: u32,
    /// The buffer's full length (plane 0).
    pub length: u32,
    /// The buffer's timestamp, microseconds (clock per `flags & TIMESTAMP_MASK`).
    pub timestamp_us: u64,
}

impl Dequeued {
    pub fn keyframe(&self) -> bool {
        self.flags & V4L2_BUF_FLAG_KEYFRAME != 0
    }

    pub fn error(&self) -> bool {
        self.flags & V4L2_BUF_FLAG_ERROR != 0
    }

    pub fn last(&self) -> bool {
        self.flags & V4L2_BUF_FLAG_LAST != 0
    }

    /// The timestamp is on `CLOCK_MONOTONIC`, stamped by the driver or copied from an OUTPUT
    /// buffer that campush stamped with a monotonic time.
    pub fn timestamp_usable(&self) -> bool {
        self.timestamp_us != 0
            && matches!(
                self.flags & V4L2_BUF_FLAG_TIMESTAMP_MASK,
                V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC | V4L2_BUF_FLAG_TIMESTAMP_COPY
            )
    }
}

/// A queue of buffers on one device.
pub struct Queue {
    // Field order is drop order: mappings go before the device handle.
    maps: Vec<Vec<Mapping>>,
    planes: Box<[v4l2_plane; VIDEO_MAX_PLANES]>,
    queued: Vec<bool>,
    num_planes: usize,
    ty: BufType,
    memory: u32,
    streaming: bool,
    dev: Arc<Device>,
}

fn empty_planes() -> Box<[v4l2_plane; VIDEO_MAX_PLANES]> {
    // SAFETY: v4l2_plane is plain old data.
    Box::new(unsafe { sys::zeroed() })
}

impl Queue {
    /// `REQBUFS(count, MMAP)`, then `QUERYBUF` and `mmap` every plane of every buffer.
    pub fn mmap(
        dev: &Arc<Device>,
        ty: BufType,
        count: u32,
        num_planes: usize,
    ) -> io::Result<Queue> {
        let got = dev.request_buffers(ty, V4L2_MEMORY_MMAP, count)?;
        let mut q = Queue {
            maps: Vec::with_capacity(got as usize),
            planes: empty_planes(),
            queued: vec![false; got as usize],
            num_planes: num_planes.clamp(1, VIDEO_MAX_PLANES),
            ty,
            memory: V4L2_MEMORY_MMAP,
            streaming: false,
            dev: Arc::clone(dev),
        };
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "the driver allocated no buffers",
            ));
        }
        for index in 0..got {
            let mut buf = q.blank(index);
            q.dev.query_buffer(&mut buf)?;
            let mut planes = Vec::with_capacity(q.num_planes);
            let spans: Vec<(u32, u32)> = if ty.is_multiplanar() {
                q.planes[..q.num_planes]
                    .iter()
                    // SAFETY: MMAP queues fill `mem_offset`.
                    .map(|p| (unsafe { p.m.mem_offset }, p.length))
                    .collect()
            } else {
                // SAFETY: as above, for the single-planar member.
                vec![(unsafe { buf.m.offset }, buf.length)]
            };
            for (offset, len) in spans {
                planes.push(map(&q.dev, offset, len as usize)?);
            }
            q.maps.push(planes);
        }
        Ok(q)
    }

    /// `REQBUFS(count, DMABUF)`: buffers whose memory is imported per `QBUF`.
    pub fn dmabuf(
        dev: &Arc<Device>,
        ty: BufType,
        count: u32,
        num_planes: usize,
    ) -> io::Result<Queue> {
        let got = dev.request_buffers(ty, V4L2_MEMORY_DMABUF, count)?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "the driver allocated no buffers",
            ));
        }
        Ok(Queue {
            maps: Vec::new(),
            planes: empty_planes(),
            queued: vec![false; got as usize],
            num_planes: num_planes.clamp(1, VIDEO_MAX_PLANES),
            ty,
            memory: V4L2_MEMORY_DMABUF,
            streaming: false,
            dev: Arc::clone(dev),
        })
    }

    pub fn count(&self) -> usize {
        self.queued.len()
    }

    pub fn buf_type(&self) -> BufType {
        self.ty
    }

    pub fn is_queued(&self, index: u32) -> bool {
        self.queued.get(index as usize).copied().unwrap_or(false)
    }

    /// A free (not queued) buffer index, lowest first.
    pub fn free_index(&self) -> Option<u32> {
        self.queued.iter().position(|q| !q).map(|i| i as u32)
    }

    /// Length of plane `plane` of buffer `index` (MMAP queues).
    pub fn plane_len(&self, index: u32, plane: usize) -> usize {
        self.maps
            .get(index as usize)
            .and_then(|p| p.get(plane))
            .map_or(0, |m| m.len)
    }

    /// The mapped bytes of one plane (MMAP queues; empty otherwise).
    pub fn plane(&self, index: u32, plane: usize) -> &[u8] {
        match self.maps.get(index as usize).and_then(|p| p.get(plane)) {
            // SAFETY: the mapping is valid for `len` bytes while `self` lives, and the buffer
            // is dequeued (the caller's protocol), so the device does not write it now.
            Some(m) => unsafe { std::slice::from_raw_parts(m.ptr, m.len) },
            None => &[],
        }
    }

    /// The mapped bytes of one plane for writing (MMAP OUTPUT queues).
    pub fn plane_mut(&mut self, index: u32, plane: usize) -> &mut [u8] {
        match self
            .maps
            .get_mut(index as usize)
            .and_then(|p| p.get_mut(plane))
        {
            // SAFETY: as in `plane`, and `&mut self` makes the borrow exclusive.
            Some(m) => unsafe { std::slice::from_raw_parts_mut(m.ptr, m.len) },
            None => &mut [],
        }
    }

    /// The payload of a dequeued buffer (plane 0).
    pub fn payload(&self, d: &Dequeued) -> &[u8] {
        let plane = self.plane(d.index, 0);
        let start = (d.data_offset as usize).min(plane.len());
        let end = (start + d.bytesused as usize).min(plane.len());
        &plane[start..end]
    }

    /// A `v4l2_buffer` for `index`, wired to the plane scratch array when multi-planar.
    fn blank(&mut self, index: u32) -> v4l2_buffer {
        // SAFETY: plain old data.
        let mut buf: v4l2_buffer = unsafe { sys::zeroed() };
        buf.index = index;
        buf.type_ = self.ty.0;
        buf.memory = self.memory;
        if self.ty.is_multiplanar() {
            *self.planes = unsafe { sys::zeroed() };
            buf.m.planes = self.planes.as_mut_ptr();
            buf.length = self.num_planes as u32;
        }
        buf
    }

    /// Queues MMAP buffer `index`. `bytesused` (OUTPUT queues) is per plane; capture queues pass
    /// an empty slice. `timestamp_us` is set on OUTPUT buffers (the encoder copies it).
    pub fn queue_mmap(
        &mut self,
        index: u32,
        bytesused: &[u32],
        timestamp_us: u64,
    ) -> io::Result<()> {
        let mut buf = self.blank(index);
        if self.ty.is_output() {
            set_timestamp(&mut buf, timestamp_us);
            buf.field = V4L2_FIELD_NONE;
            if self.ty.is_multiplanar() {
                for (i, used) in bytesused.iter().take(self.num_planes).enumerate() {
                    self.planes[i].bytesused = *used;
                    self.planes[i].length = self.plane_len(index, i) as u32;
                }
            } else {
                buf.bytesused = bytesused.first().copied().unwrap_or(0);
            }
        }
        self.dev.queue_buffer(&mut buf)?;
        self.queued[index as usize] = true;
        Ok(())
    }

    /// Queues DMABUF buffer `index` backed by `fds` (one per plane), with `bytesused` and
    /// `length` per plane.
    pub fn queue_dmabuf(
        &mut self,
        index: u32,
        fds: &[std::os::fd::RawFd],
        bytesused: &[u32],
        length: &[u32],
        timestamp_us: u64,
    ) -> io::Result<()> {
        let mut buf = self.blank(index);
        if self.ty.is_output() {
            set_timestamp(&mut buf, timestamp_us);
            buf.field = V4L2_FIELD_NONE;
        }
        if self.ty.is_multiplanar() {
            let planes = self.planes.iter_mut().take(self.num_planes);
            for (i, (plane, fd)) in planes.zip(fds).enumerate() {
                plane.m.fd = *fd;
                plane.bytesused = bytesused.get(i).copied().unwrap_or(0);
                plane.length = length.get(i).copied().unwrap_or(0);
            }
        } else {
            buf.m.fd = fds.first().copied().unwrap_or(-1);
            buf.bytesused = bytesused.first().copied().unwrap_or(0);
            buf.length = length.first().copied().unwrap_or(0);
        }
        self.dev.queue_buffer(&mut buf)?;
        self.queued[index as usize] = true;
        Ok(())
    }

    /// Dequeues one finished buffer; `Ok(None)` when none is ready (EAGAIN).
    pub fn dequeue(&mut self) -> io::Result<Option<Dequeued>> {
        let mut buf = self.blank(0);
        match self.dev.dequeue_buffer(&mut buf) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(None),
            Err(e) => return Err(e),
        }
        if let Some(q) = self.queued.get_mut(buf.index as usize) {
            *q = false;
        }
        let (bytesused, data_offset, length) = if self.ty.is_multiplanar() {
            let p = &self.planes[0];
            (p.bytesused, p.data_offset.min(p.bytesused), p.length)
        } else {
            (buf.bytesused, 0, buf.length)
        };
        let ts = buf.timestamp;
        let timestamp_us = if ts.tv_sec < 0 || ts.tv_usec < 0 {
            0
        } else {
            ts.tv_sec as u64 * 1_000_000 + ts.tv_usec as u64
        };
        Ok(Some(Dequeued {
            index: buf.index,
            flags: buf.flags,
            sequence: buf.sequence,
            bytesused: bytesused - data_offset,
            data_offset,
            length,
            timestamp_us,
        }))
    }

    /// Exports every plane of every buffer as DMABUF fds (MMAP queues).
    pub fn export_all(&self) -> io::Result<Vec<Vec<std::os::fd::OwnedFd>>> {
        (0..self.count() as u32)
            .map(|index| {
                (0..self.num_planes as u32)
                    .map(|plane| self.dev.export_buffer(self.ty, index, plane))
                    .collect()
            })
            .collect()
    }

    pub fn stream_on(&mut self) -> io::Result<()> {
        self.dev.stream_on(self.ty)?;
        self.streaming = true;
        Ok(())
    }

    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.dev.as_raw_fd()
    }
}

fn set_timestamp(buf: &mut v4l2_buffer, us: u64) {
    buf.timestamp = v4l2_timeval {
        tv_sec: (us / 1_000_000) as libc::c_long,
        tv_usec: (us % 1_000_000) as libc::c_long,
    };
}

fn map(dev: &Device, offset: u32, len: usize) -> io::Result<Mapping> {
    if len == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the driver reported a zero-length buffer",
        ));
    }
    // SAFETY: mapping a buffer the driver just described; checked for MAP_FAILED below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            dev.as_raw_fd(),
            offset as libc::off_t,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(Mapping {
        ptr: ptr as *mut u8,
        len,
    })
}

impl Drop for Queue {
    fn drop(&mut self) {
        if self.streaming {
            let _ = self.dev.stream_off(self.ty);
        }
        self.maps.clear();
        let _ = self.dev.request_buffers(self.ty, self.memory, 0);
    }
}
