import CLibEvent
import Glibc

/// A piece of request body as libevent received it (valid during one `consume` call).
public struct BodyChunk {
    let buffer: OpaquePointer

    /// The number of bytes in this piece.
    public var count: Int { evbuffer_get_length(buffer) }
}

/// Body bytes gathered without copying, written out in large vectored writes.
///
/// A slow connection delivers its body in small pieces (a read brings what the socket
/// holds, up to 256 KiB); moving them here (`evbuffer_add_buffer` relinks them) and
/// writing many at once with `writev` saves a syscall per piece.
public final class BodyBuffer {
    private let buffer: OpaquePointer

    public init() {
        buffer = evbuffer_new()
    }

    deinit {
        evbuffer_free(buffer)
    }

    /// The number of bytes held.
    public var count: Int { evbuffer_get_length(buffer) }

    /// Moves the bytes of `chunk` to the end of this buffer.
    public func append(_ chunk: BodyChunk) {
        evbuffer_add_buffer(buffer, chunk.buffer)
    }

    /// Writes every byte held to `descriptor` and empties the buffer.
    ///
    /// - Throws: the `errno` of the failed write.
    public func drain(to descriptor: Int32) throws(BodyWriteError) {
        while evbuffer_get_length(buffer) > 0 {
            let written = evbuffer_write(buffer, descriptor)
            if written < 0 {
                if errno == EINTR { continue }
                throw BodyWriteError(errno: errno)
            }
        }
    }
}

extension BodyBuffer {
    /// The most pieces one `writev` is given.
    static let vectorsPerWrite = 64

    /// Writes every byte held to `descriptor` and moves them (relinked, not copied) into
    /// the returned ``WrittenBytes``, for whoever reads them next (a hash).
    ///
    /// - Throws: the `errno` of the failed write; what was written before it is dropped.
    public func drainKeeping(to descriptor: Int32) throws(BodyWriteError) -> WrittenBytes {
        let kept = WrittenBytes()
        // evbuffer_iovec is iovec itself on every Unix (a macro in libevent's headers).
        try withUnsafeTemporaryAllocation(of: iovec.self, capacity: Self.vectorsPerWrite) {
            vectors throws(BodyWriteError) in
            while evbuffer_get_length(buffer) > 0 {
                let pieces = min(
                    Int(evbuffer_peek(buffer, -1, nil, vectors.baseAddress, Int32(Self.vectorsPerWrite))),
                    Self.vectorsPerWrite)
                let written = writev(descriptor, vectors.baseAddress, Int32(pieces))
                if written < 0 {
                    if errno == EINTR { continue }
                    throw BodyWriteError(errno: errno)
                }
                evbuffer_remove_buffer(buffer, kept.buffer, Int(written))
            }
        }
        return kept
    }
}

/// Body bytes already written, kept without a copy until their reader drops them. Used
/// by one thread at a time (handed over whole).
public final class WrittenBytes: @unchecked Sendable {
    let buffer: OpaquePointer

    init() {
        buffer = evbuffer_new()
    }

    deinit {
        evbuffer_free(buffer)
    }

    /// The number of bytes held.
    public var count: Int { evbuffer_get_length(buffer) }

    /// Calls `body` with each contiguous piece, in order.
    public func forEachRegion(_ body: (UnsafeRawBufferPointer) -> Void) {
        let pieces = Int(evbuffer_peek(buffer, -1, nil, nil, 0))
        guard pieces > 0 else { return }
        withUnsafeTemporaryAllocation(of: iovec.self, capacity: pieces) { vectors in
            let filled = min(Int(evbuffer_peek(buffer, -1, nil, vectors.baseAddress, Int32(pieces))), pieces)
            for vector in vectors.prefix(filled) {
                body(UnsafeRawBufferPointer(start: vector.iov_base, count: vector.iov_len))
            }
        }
    }
}

/// A failed write of body bytes.
public struct BodyWriteError: Error {
    public var errno: Int32
}
