// libFuzzer target for the upload contract: arbitrary header blocks must never crash the
// validator, and whatever it accepts must keep the contract's promises. Built and run by
// `make fuzz` (swiftc -sanitize=fuzzer,address, with Sources/FerryCore/Contract compiled in).

/// Splits fuzz input into header fields: one `Name: value` per line.
private func headerFields(_ bytes: UnsafeRawBufferPointer) -> [(String, String)] {
    let text = String(decoding: bytes, as: UTF8.self)
    return text.split(separator: "\n", omittingEmptySubsequences: false).compactMap { line in
        guard let colon = line.firstIndex(of: ":") else { return nil }
        let value = line[line.index(after: colon)...].drop { $0 == " " }
        return (String(line[..<colon]), String(value))
    }
}

private func check(_ condition: Bool, _ promise: String, _ request: UploadRequest) {
    if !condition { fatalError("accepted a request that breaks '\(promise)': \(request)") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHeaderAdmission(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let fields = headerFields(UnsafeRawBufferPointer(start: data, count: count))
    // One remote is allowed: names of others, and of none, must still be refused.
    let result = Result { () throws(ContractViolation) in
        try UploadContract.validate(
            { name in fields.filter { $0.0.lowercased() == name.lowercased() }.map(\.1) }, remotes: ["r2"])
    }
    guard case .success(let request) = result else { return 0 }
    check(InstanceName.problem(with: request.instance) == nil, "valid instance name", request)
    check(request.remote == nil || request.remote == "r2", "only the allowed remote", request)
    check(
        !request.container.hasPrefix("-")
            && request.container.split(separator: ":", omittingEmptySubsequences: false).count
                <= (request.remote == nil ? 1 : 2),
        "no option, at most the allowed remote", request)
    let path = Array(request.path.utf8)
    check(path.first == UInt8(ascii: "/"), "absolute path", request)
    check(path.count <= DestinationPath.maximumLength, "bounded path", request)
    check(!path.contains { $0 < 0x20 || $0 == 0x7f }, "no control characters", request)
    check(!request.path.hasSuffix("/"), "names a file", request)
    let segments = request.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
    check(!segments.contains { $0 == "." || $0 == ".." || $0.isEmpty }, "normalised path", request)
    check(!segments.contains { $0.utf8.count > 255 }, "names fit NAME_MAX", request)
    check(request.mode <= 0o7777, "permission bits only", request)
    check(request.uid != UInt32.max && request.gid != UInt32.max, "no -1 owner", request)
    return 0
}
