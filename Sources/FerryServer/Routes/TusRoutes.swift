import FerryCore
import FerryHTTP
import Foundation
import Glibc
import Logging

/// tus 1.0.0 at `/files/`: creation (with upload, deferred length), HEAD, PATCH,
/// termination, checksums and expiration. An upload's bytes take the same path as those of
/// `/upload` (``UploadStream``), and its last byte makes it a task like any other.
struct TusRoutes {
    static let version = "1.0.0"
    static let extensions =
        "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration"
    static let checksumAlgorithms = "sha1,sha256,md5"
    static let patchType = "application/offset+octet-stream"

    let service: DeliveryService
    let configuration: FerryConfiguration
    let metrics: FerryMetrics

    /// Whether `path` is a tus route.
    static func matches(_ path: String) -> Bool {
        path == "/files" || path.hasPrefix("/files/")
    }

    /// The upload id in `path`, or nil for the collection itself.
    static func uploadID(_ path: String) -> String? {
        let rest = path.dropFirst("/files".count).drop { $0 == "/" }
        return rest.isEmpty ? nil : String(rest)
    }

    /// The methods `path` takes.
    static func methods(_ path: String) -> String {
        uploadID(path) == nil ? "OPTIONS, POST" : "OPTIONS, HEAD, PATCH, DELETE"
    }

    /// tus's discovery answer (OPTIONS).
    func options() -> HTTPResponse {
        HTTPResponse(
            status: 204,
            headers: [
                ("Tus-Version", Self.version), ("Tus-Max-Size", String(configuration.maxBodySize)),
                ("Tus-Extension", Self.extensions), ("Tus-Checksum-Algorithm", Self.checksumAlgorithms),
            ])
    }

    /// Judges a tus request head (OPTIONS and authentication are the router's).
    func admit(
        _ head: HTTPRequestHead, rule: TokenRule?, logger: Logger, refuse: (APIError) -> HTTPAdmission
    ) -> HTTPAdmission {
        // The method first: a method the path does not take is 405 whatever the version.
        let allowed = Self.uploadID(head.path) == nil ? ["POST"] : ["HEAD", "PATCH", "DELETE"]
        guard allowed.contains(head.method) else {
            return refuse(.methodNotAllowed(allowed: Self.methods(head.path)))
        }
        let versions = head.values(of: "Tus-Resumable")
        guard versions.count == 1, versions[0] == Self.version else { return refuse(.tusVersion) }
        guard let id = Self.uploadID(head.path) else {
            return create(head, rule: rule, logger: logger, refuse: refuse)
        }
        switch head.method {
        case "HEAD":
            if head.framing != .none { return refuse(.bodyNotAllowed) }
            return .accept(
                Answer(
                    { [service] in Self.position(id: id, viewer: rule?.name, service: service) },
                    offLoop: true))
        case "DELETE":
            if head.framing != .none { return refuse(.bodyNotAllowed) }
            guard let upload = service.resumable(id: id, viewer: rule?.name) else {
                return refuse(.unknownUpload(id))
            }
            return .accept(
                Answer(
                    { [service] in
                        do throws(UploadRefusal) {
                            return try service.terminate(upload)
                                ? HTTPResponse(status: 204) : APIError.unknownUpload(id).response
                        } catch {
                            return APIError(error).response
                        }
                    }, offLoop: true))
        case "PATCH":
            return patch(head, id: id, rule: rule, logger: logger, refuse: refuse)
        default:
            return refuse(.methodNotAllowed(allowed: Self.methods(head.path)))
        }
    }

    // MARK: Creation

    private func create(
        _ head: HTTPRequestHead, rule: TokenRule?, logger: Logger, refuse: (APIError) -> HTTPAdmission
    ) -> HTTPAdmission {
        let started = Monotonic.seconds()
        let plan: DeliveryService.ResumablePlan
        do throws(APIError) {
            plan = try creationPlan(head, rule: rule)
        } catch {
            return refuse(error)
        }
        let patch: ResumablePatch
        do throws(UploadRefusal) {
            patch = try service.createResumable(plan)
        } catch {
            return refuse(APIError(error))
        }
        return .accept(
            UploadStream(
                upload: patch, logger: logger, metrics: metrics, started: started, protocolName: "tus",
                answer: { outcome in
                    var response = Self.progress(outcome, status: 201)
                    response.headers.append(("Location", "/files/\(patch.id)"))
                    return response
                }))
    }

    private func creationPlan(_ head: HTTPRequestHead, rule: TokenRule?) throws(APIError)
        -> DeliveryService.ResumablePlan
    {
        let length = try Self.length(head)
        let deferred = try Self.single(head, "Upload-Defer-Length")
        switch (length, deferred) {
        case (nil, nil): throw .badTusHeader("a creation needs Upload-Length (or Upload-Defer-Length: 1)")
        case (_?, _?): throw .badTusHeader("Upload-Length and Upload-Defer-Length exclude each other")
        case (nil, let value?) where value != "1": throw .badTusHeader("Upload-Defer-Length must be 1")
        default: break
        }
        if let length, length > configuration.maxBodySize {
            throw .bodyTooLarge(limit: configuration.maxBodySize)
        }
        let metadataField = try Self.single(head, "Upload-Metadata")
        let metadata = try TusMetadata(metadataField ?? "")
        if let name = UploadContract.headers.first(where: head.isNotUTF8) { throw .contract(.notUTF8(name)) }
        let request: UploadRequest
        do {
            request = try UploadContract.validate(
                { name in head.values(of: name) + metadata.contractValues(name) },
                remotes: configuration.remoteNames)
        } catch .missingHeader(let name) {
            let key = TusMetadata.contractKeys.first { $0.value == name }?.key ?? name
            throw .badTusHeader("Upload-Metadata needs \(key) (or the \(name) header)")
        } catch {
            throw .contract(error)
        }
        if let rule, let refusal = rule.refusal(of: request, size: length) { throw .forbidden(refusal) }
        if head.framing != .none { try Self.checkPatchType(head) }
        return DeliveryService.ResumablePlan(
            request: request, length: length, metadata: metadataField.flatMap { $0.isEmpty ? nil : $0 },
            owner: rule?.name, quota: rule?.quota, limits: limits(rule),
            reprDigests: try FerryRouter.expectedDigests(head, fields: ["Repr-Digest"]),
            patchDigests: try Self.patchDigests(head), requestID: head.requestID)
    }

    // MARK: PATCH

    private func patch(
        _ head: HTTPRequestHead, id: String, rule: TokenRule?, logger: Logger,
        refuse: (APIError) -> HTTPAdmission
    ) -> HTTPAdmission {
        let started = Monotonic.seconds()
        let patch: ResumablePatch
        do throws(APIError) {
            try Self.checkPatchType(head)
            guard let text = try Self.single(head, "Upload-Offset") else {
                throw .badTusHeader("a PATCH needs Upload-Offset")
            }
            guard let offset = Self.number(text) else {
                throw .badTusHeader("Upload-Offset must be a number of bytes")
            }
            let length = try Self.length(head)
            let patchDigests = try Self.patchDigests(head)
            let reprDigests = try FerryRouter.expectedDigests(head, fields: ["Repr-Digest"])
            guard let upload = service.resumable(id: id, viewer: rule?.name) else { throw .unknownUpload(id) }
            // The rule in force now: a token narrowed (or emptied) since the creation may
            // not write on.
            if let rule, let refusal = rule.refusal(of: upload.request, size: length) {
                throw .forbidden(refusal)
            }
            do throws(DeliveryService.PatchRefusal) {
                patch = try service.beginPatch(
                    upload, at: offset, length: length, announced: head.framing.announcedLength,
                    limits: limits(rule), patchDigests: patchDigests,
                    reprDigests: reprDigests)
            } catch {
                switch error {
                case .gone: throw .unknownUpload(id)
                case .offsetMismatch(let current): throw .offsetMismatch(current: current)
                case .badLength(let reason): throw .badTusHeader(reason)
                case .busy: throw .uploadLocked
                case .refused(let refusal): throw APIError(refusal)
                }
            }
        } catch {
            return refuse(error)
        }
        return .accept(
            UploadStream(
                upload: patch, logger: logger, metrics: metrics, started: started, protocolName: "tus",
                answer: { outcome in Self.progress(outcome, status: 204) }))
    }

    // MARK: Answers

    /// The answer to HEAD: where the upload stands (on stable storage), or, for one that
    /// completed, its whole length (a client that missed the last answer then knows).
    private static func position(id: String, viewer: String?, service: DeliveryService) -> HTTPResponse {
        var headers: [(name: String, value: String)] = [("Cache-Control", "no-store")]
        if let upload = service.resumable(id: id, viewer: viewer) {
            do throws(UploadRefusal) {
                if let position = try service.position(of: upload) {
                    headers.append(("Upload-Offset", String(position.offset)))
                    headers.append(
                        position.length.map { ("Upload-Length", String($0)) } ?? ("Upload-Defer-Length", "1"))
                    if let metadata = upload.metadata { headers.append(("Upload-Metadata", metadata)) }
                    headers.append(("Upload-Expires", HTTPDate.format(position.expiresAt)))
                    return HTTPResponse(status: 200, headers: headers)
                }
            } catch {
                return APIError(error).response
            }
        }
        do throws(StoreError) {
            if let record = try service.task(id: id, viewer: viewer), record.state != .receiving {
                headers.append(("Upload-Offset", String(record.bytes)))
                headers.append(("Upload-Length", String(record.bytes)))
                return HTTPResponse(status: 200, headers: headers)
            }
        } catch {
            return APIError.serverFault(error.description).response
        }
        return APIError.unknownUpload(id).response
    }

    /// The answer to a creation (201) or a PATCH (204) that kept its bytes.
    static func progress(_ outcome: PatchOutcome, status: Int) -> HTTPResponse {
        var headers: [(name: String, value: String)] = [("Upload-Offset", String(outcome.offset))]
        if let record = outcome.completed {
            if let digest = record.reprDigest { headers.append(("Repr-Digest", digest)) }
            headers.append(("Content-Location", "/tasks/\(record.id)"))
        } else {
            headers.append(("Upload-Expires", HTTPDate.format(outcome.expiresAt)))
        }
        return HTTPResponse(status: status, headers: headers)
    }

    // MARK: Headers

    private func limits(_ rule: TokenRule?) -> ResumableLimits {
        ResumableLimits(
            maxBodySize: configuration.maxBodySize,
            tokenLimit: rule.flatMap { rule in
                rule.maxUpload.map { limit in
                    (
                        limit,
                        AccessRefusal(
                            token: rule.name, rule: "max_upload", detail: "more than \(limit) bytes")
                    )
                }
            }, quota: rule?.quota, minFreeDisk: configuration.minFreeDisk)
    }

    private static func checkPatchType(_ head: HTTPRequestHead) throws(APIError) {
        let type = head.values(of: "Content-Type")
        guard type.count == 1, type[0].lowercased() == patchType else {
            throw .unsupportedMediaType(type.joined(separator: ", "))
        }
    }

    /// The checks of one request's own bytes: `Upload-Checksum` and `Content-Digest`.
    private static func patchDigests(_ head: HTTPRequestHead) throws(APIError) -> ExpectedDigests {
        var digests = try FerryRouter.expectedDigests(head, fields: ["Content-Digest"])
        if let checksum = try single(head, "Upload-Checksum") {
            do throws(DigestFieldError) {
                try digests.add(tusChecksum: checksum)
            } catch {
                throw .badDigestField(error)
            }
        }
        return digests
    }

    private static func length(_ head: HTTPRequestHead) throws(APIError) -> UInt64? {
        guard let text = try single(head, "Upload-Length") else { return nil }
        guard let length = number(text) else {
            throw .badTusHeader("Upload-Length must be a number of bytes")
        }
        return length
    }

    private static func single(_ head: HTTPRequestHead, _ name: String) throws(APIError) -> String? {
        let values = head.values(of: name)
        if values.count > 1 { throw .contract(.duplicateHeader(name)) }
        return values.first
    }

    /// Digits only, at most 19 of them.
    private static func number(_ text: String) -> UInt64? {
        guard (1...19).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return nil
        }
        return UInt64(text)
    }
}

/// RFC 9110's date format (IMF-fixdate), for `Upload-Expires` on every tus answer: made
/// with the C library (a DateFormatter per answer costs more than the answer).
enum HTTPDate {
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]

    static func format(_ seconds: Double) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) "
            + "\(parts.tm_year + 1900) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
