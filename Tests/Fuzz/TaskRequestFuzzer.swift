// libFuzzer target for `/tasks` requests: any method, path and query must parse to a
// request or a problem, never trap, and what parses must keep the route's promises. Built
// and run by `make fuzz` (and briefly by `make test`) with
// Sources/FerryServer/Routes/TaskRequest.swift compiled in.

private let methods = ["GET", "HEAD", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"]
private let states = ["queued", "pushing", "retrying", "delivered", "failed"]

private func check(_ condition: Bool, _ promise: String, _ input: String) {
    if !condition { fatalError("parsed a request that breaks '\(promise)': \(input)") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTaskRequest(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard count > 0 else { return 0 }
    // The first byte picks the method; the rest is the path, then after a newline the query
    // (no newline: no query), as HTTPRequestHead hands them over.
    let method = methods[Int(data[0]) % methods.count]
    let rest = String(decoding: UnsafeBufferPointer(start: data + 1, count: count - 1), as: UTF8.self)
    let parts = rest.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
    let path = String(parts[0])
    let query = parts.count > 1 ? String(parts[1]) : nil
    let target = path + (query.map { "?" + $0 } ?? "")
    let input = "\(method) \(target)"
    switch TaskRequest.parse(method: method, path: path, query: query, states: states) {
    case .success(.list(let list)):
        check(path == "/tasks", "only /tasks lists", input)
        check((1...TaskRequest.maximumLimit).contains(list.limit), "bounded limit", input)
        check(list.state.map(states.contains) ?? true, "a known state", input)
        check(list.after.map { !$0.isEmpty } ?? true, "a cursor names a task", input)
        check(
            list.idPrefix.map { prefix in
                // The start of NODE-HEX32: at most 32 + 1 + 32 bytes of [a-z0-9-].
                (1...65).contains(prefix.utf8.count)
                    && prefix.utf8.allSatisfy {
                        ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == 0x2d
                    }
            } ?? true, "an id prefix is an id's", input)
    case .success(.show(let id)), .success(.delete(let id)), .success(.retry(let id)):
        check(!id.isEmpty && !id.contains("/"), "one path segment as id", input)
        check(path.hasPrefix("/tasks/\(id)"), "the id comes from the path", input)
    case .success(.retryAll(let container)), .success(.deleteAll(let container)):
        check(path == "/tasks" || path == "/tasks/retry", "bulk actions on the collection", input)
        check(query?.contains("state=failed") == true, "bulk actions name dead letters", input)
        check(container.map { !$0.isEmpty } ?? true, "a named container", input)
    case .failure:
        break
    }
    return 0
}
