import XCTest

@testable import FerryServer

/// `/tasks` requests are parsed without trusting the method, the path or the query.
final class TaskRequestTests: XCTestCase {
    private let states = ["queued", "failed"]

    private func parse(_ query: String?) -> Result<TaskRequest, TaskRequest.Problem> {
        parse("GET", "/tasks", query)
    }

    private func parse(_ method: String, _ path: String, _ query: String?) -> Result<
        TaskRequest, TaskRequest.Problem
    > {
        TaskRequest.parse(method: method, path: path, query: query, states: states)
    }

    func testTheQueryThatCrashedTheProcessIsABadQuery() {
        XCTAssertEqual(parse("="), .failure(.badQuery("unknown query parameter ''")))
    }

    func testMalformedQueriesAreRefusedWithAReason() {
        let refused = [
            "=x", "==", "state", "state=", "state=bogus", "limit=0", "limit=1001", "limit=-1", "limit=1e3",
            "limit=99999999999999999999", "limit= 5", "after=", "after", "%", "state=%zz", "x=1",
            "state=queued&state=failed", "limit=5&limit=5", "container=", "path_prefix=srv",
            "path_prefix=", "after=ab%00cd", "container=c1%00", "container=c1&container=c2",
        ]
        for query in refused {
            guard case .failure(.badQuery(let reason)) = parse(query) else {
                XCTFail("\(query) was not refused: \(parse(query))")
                continue
            }
            XCTAssertFalse(reason.isEmpty, query)
        }
    }

    func testAcceptedQueries() {
        XCTAssertEqual(parse(nil), .success(.list(.init(state: nil, limit: 100, after: nil))))
        XCTAssertEqual(parse(""), .success(.list(.init(state: nil, limit: 100, after: nil))))
        XCTAssertEqual(parse("&&"), .success(.list(.init(state: nil, limit: 100, after: nil))))
        XCTAssertEqual(
            parse("state=failed&limit=7&after=ab%63"),
            .success(.list(.init(state: "failed", limit: 7, after: "abc"))))
        XCTAssertEqual(
            parse("container=web-1&path_prefix=/srv/app%2F"),
            .success(
                .list(.init(state: nil, limit: 100, after: nil, container: "web-1", pathPrefix: "/srv/app/")))
        )
        XCTAssertEqual(
            parse("id_prefix=0af3"),
            .success(.list(.init(state: nil, limit: 100, after: nil, idPrefix: "0af3"))))
        if case .success = parse("id_prefix=0AF3") { XCTFail("upper case is not an id") }
    }

    func testRoutesAndMethods() {
        XCTAssertEqual(parse("GET", "/tasks/abc", nil), .success(.show(id: "abc")))
        XCTAssertEqual(parse("HEAD", "/tasks/abc", nil), .success(.show(id: "abc")))
        XCTAssertEqual(parse("DELETE", "/tasks/abc", nil), .success(.delete(id: "abc")))
        XCTAssertEqual(parse("POST", "/tasks/abc/retry", nil), .success(.retry(id: "abc")))
        XCTAssertEqual(parse("GET", "/tasks/abc/retry", nil), .failure(.methodNotAllowed(allowed: "POST")))
        XCTAssertEqual(
            parse("POST", "/tasks", nil), .failure(.methodNotAllowed(allowed: "GET, HEAD, DELETE")))
        XCTAssertEqual(parse("DELETE", "/tasks", "state=failed"), .success(.deleteAll(container: nil)))
        XCTAssertEqual(
            parse("POST", "/tasks/retry", "state=failed&container=c1"), .success(.retryAll(container: "c1")))
        XCTAssertEqual(
            parse("DELETE", "/tasks", nil),
            .failure(.badQuery("a bulk action needs state=failed (it acts on dead letters only)")))
        XCTAssertEqual(
            parse("POST", "/tasks/retry", "state=failed&after=abc"),
            .failure(.badQuery("a bulk action takes state and container only")))
        XCTAssertEqual(parse("GET", "/tasks/retry", nil), .failure(.methodNotAllowed(allowed: "POST")))
        XCTAssertEqual(
            parse("PUT", "/tasks/abc", nil), .failure(.methodNotAllowed(allowed: "GET, HEAD, DELETE")))
        for path in [
            "/tasks/", "/tasks//retry", "/tasks/a/b", "/tasks/a/retry/x", "/tasksx", "/", "", "tasks/x",
            ";;;;/tasks/X", "x/tasks",
        ] {
            XCTAssertEqual(parse("GET", path, nil), .failure(.notFound), path)
        }
    }
}
