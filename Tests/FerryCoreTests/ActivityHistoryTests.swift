import FerryCore
import XCTest

/// The console's last hour: a bucket a minute, everyone's and each token's apart.
final class ActivityHistoryTests: XCTestCase {
    func testCountsLandInTheirMinuteAndAgeOutAfterAnHour() {
        let history = ActivityHistory()
        let start = 1_000_000.0 * 60
        history.record(.received, owner: nil, at: start)
        history.record(.received, owner: "alice", count: 2, at: start + 30)
        history.record(.delivered, owner: "alice", at: start + 61)
        history.record(.failed, owner: "bob", at: start + 59 * 60)

        let now = history.series(viewer: nil, at: start + 59 * 60 + 5)
        XCTAssertEqual(now.start, start)
        XCTAssertEqual(now.received.count, 60)
        XCTAssertEqual(now.received[0], 3)
        XCTAssertEqual(now.delivered[1], 1)
        XCTAssertEqual(now.failed[59], 1)
        let alice = history.series(viewer: "alice", at: start + 59 * 60 + 5)
        XCTAssertEqual(alice.received.reduce(0, +), 2)
        XCTAssertEqual(alice.failed.reduce(0, +), 0, "bob's failure is not alice's")
        XCTAssertEqual(history.series(viewer: "carol", at: start).received.reduce(0, +), 0)

        // An hour on, the first minute is gone, even where its bucket was not reused.
        let later = history.series(viewer: nil, at: start + 60 * 60)
        XCTAssertEqual(later.received.reduce(0, +), 0)
        XCTAssertEqual(later.delivered[0], 1, "minute 1 is the oldest kept")
        // A new count in a reused bucket does not add to the old one.
        history.record(.received, owner: nil, at: start + 60 * 60)
        XCTAssertEqual(history.series(viewer: nil, at: start + 60 * 60).received[59], 1)
    }
}
