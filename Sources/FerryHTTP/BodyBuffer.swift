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

/// A failed write of body bytes.
public struct BodyWriteError: Error {
    public var errno: Int32
}
