/// The few SFTP version 3 packets (draft-ietf-secsh-filexfer-02) that Ferry exchanges with
/// the Incus SFTP endpoint: INIT, STAT/LSTAT out; VERSION, ATTRS, STATUS back.
///
/// On the wire a packet is a big-endian `uint32` length (of what follows), a type byte and
/// the payload; strings are a `uint32` length and the bytes.
struct SFTPPacket: Equatable {
    /// Packet type bytes (SSH_FXP_*).
    enum Kind {
        static let initialize: UInt8 = 1
        static let version: UInt8 = 2
        static let lstat: UInt8 = 7
        static let stat: UInt8 = 17
        static let status: UInt8 = 101
        static let attributes: UInt8 = 105
    }

    /// Larger than any answer to what Ferry sends (the server caps its packets at 256 KiB);
    /// a longer length means the stream is not what Ferry thinks it is.
    static let maximumLength = 256 * 1024

    var type: UInt8
    var payload: [UInt8]

    /// A packet the payload did not fit, or a length out of bounds.
    struct Malformed: Error, Equatable {
        var reason: String
    }

    /// What the server answered to a request.
    enum Reply: Equatable {
        case version(UInt32)
        /// ATTRS: the `st_mode` bits, nil when the server left them out.
        case attributes(id: UInt32, mode: UInt32?)
        case status(id: UInt32, code: UInt32, message: String)

        /// The request this answers; nil for VERSION, which answers INIT.
        var id: UInt32? {
            switch self {
            case .version: nil
            case .attributes(let id, _), .status(let id, _, _): id
            }
        }
    }

    /// SSH_FX_NO_SUCH_FILE: the path (or one of its parents) does not exist.
    static let noSuchFile: UInt32 = 2
    /// SSH_FX_FAILURE: any other error.
    static let failure: UInt32 = 4

    static func initialize(version: UInt32) -> SFTPPacket {
        var packet = SFTPPacket(type: Kind.initialize, payload: [])
        packet.append(version)
        return packet
    }

    /// STAT (follows symlinks) or LSTAT of `path`.
    static func stat(id: UInt32, path: String, followingSymlinks: Bool) -> SFTPPacket {
        var packet = SFTPPacket(type: followingSymlinks ? Kind.stat : Kind.lstat, payload: [])
        packet.append(id)
        packet.append(Array(path.utf8))
        return packet
    }

    /// The packet as it goes on the wire.
    var encoded: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(5 + payload.count)
        Self.append(UInt32(1 + payload.count), to: &bytes)
        bytes.append(type)
        return bytes + payload
    }

    /// Takes the first whole packet off the front of `buffer`.
    ///
    /// - Returns: nil while `buffer` holds less than a whole packet.
    /// - Throws: ``Malformed`` when the length is zero or beyond ``maximumLength``.
    static func take(from buffer: inout [UInt8]) throws(Malformed) -> SFTPPacket? {
        guard buffer.count >= 4 else { return nil }
        var cursor = Cursor(buffer[..<4])
        let length = Int(try cursor.uint32())
        guard length >= 1 && length <= maximumLength else {
            throw Malformed(reason: "packet length \(length)")
        }
        guard buffer.count >= 4 + length else { return nil }
        let packet = SFTPPacket(type: buffer[4], payload: Array(buffer[5..<(4 + length)]))
        buffer.removeFirst(4 + length)
        return packet
    }

    /// The packet read as a reply.
    ///
    /// - Throws: ``Malformed`` for another type, or a payload too short for its fields.
    func reply() throws(Malformed) -> Reply {
        var cursor = Cursor(payload[...])
        switch type {
        case Kind.version:
            return .version(try cursor.uint32())
        case Kind.attributes:
            let id = try cursor.uint32()
            let flags = try cursor.uint32()
            // Fields come in flag order; only those before the permissions matter here.
            if flags & 0x1 != 0 { try cursor.skip(8) }  // size
            if flags & 0x2 != 0 { try cursor.skip(8) }  // uid, gid
            let mode = flags & 0x4 != 0 ? try cursor.uint32() : nil
            return .attributes(id: id, mode: mode)
        case Kind.status:
            let id = try cursor.uint32()
            let code = try cursor.uint32()
            // Version 3 servers may omit the message (it arrived in a later draft).
            let message = cursor.isAtEnd ? "" : String(decoding: try cursor.string(), as: UTF8.self)
            return .status(id: id, code: code, message: message)
        default:
            throw Malformed(reason: "unexpected packet type \(type)")
        }
    }

    private mutating func append(_ value: UInt32) {
        Self.append(value, to: &payload)
    }

    private mutating func append(_ string: [UInt8]) {
        Self.append(UInt32(string.count), to: &payload)
        payload += string
    }

    private static func append(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes += [
            UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff),
        ]
    }

    /// Reads big-endian fields off the front of a payload.
    private struct Cursor {
        private var bytes: ArraySlice<UInt8>

        init(_ bytes: ArraySlice<UInt8>) {
            self.bytes = bytes
        }

        var isAtEnd: Bool { bytes.isEmpty }

        mutating func uint32() throws(Malformed) -> UInt32 {
            try take(4).reduce(0) { $0 << 8 | UInt32($1) }
        }

        mutating func string() throws(Malformed) -> ArraySlice<UInt8> {
            try take(Int(try uint32()))
        }

        mutating func skip(_ count: Int) throws(Malformed) {
            _ = try take(count)
        }

        private mutating func take(_ count: Int) throws(Malformed) -> ArraySlice<UInt8> {
            guard bytes.count >= count else {
                throw Malformed(reason: "payload ends \(count - bytes.count) bytes short")
            }
            defer { bytes = bytes.dropFirst(count) }
            return bytes.prefix(count)
        }
    }
}
