import FerryCore
import XCTest

/// One owner's quota bounds that owner only; the server's bounds hold for all.
final class CapacityTests: XCTestCase {
    func testAnOwnersQueueQuotaLeavesRoomForOthers() throws {
        let capacity = Capacity(maxTasks: 10, maxBytes: nil)
        let quota = Capacity.Quota(maxTasks: 2)
        try capacity.reserve(bytes: 1, owner: "alice", quota: quota)
        try capacity.reserve(bytes: 1, owner: "alice", quota: quota)
        XCTAssertThrowsError(try capacity.reserve(bytes: 1, owner: "alice", quota: quota)) { error in
            XCTAssertEqual(error as? Capacity.Refusal, .ownerTasks(owner: "alice", limit: 2))
        }
        XCTAssertNoThrow(try capacity.reserve(bytes: 1, owner: "bob", quota: quota))
        capacity.finishTask(owner: "alice")
        XCTAssertNoThrow(
            try capacity.reserve(bytes: 1, owner: "alice", quota: quota), "a finished task frees a place")
        XCTAssertEqual(capacity.usage(of: "alice"), Capacity.Usage(tasks: 2, bytes: 3))
    }

    func testAnOwnersByteQuotaCountsHeldBytesAndGrowth() throws {
        let capacity = Capacity(maxTasks: 10, maxBytes: 1000)
        let quota = Capacity.Quota(maxBytes: 100)
        try capacity.reserve(bytes: 60, owner: "alice", quota: quota)
        capacity.finishTask(owner: "alice")  // failed: its bytes stay held
        XCTAssertThrowsError(try capacity.reserve(bytes: 60, owner: "alice", quota: quota))
        try capacity.reserve(bytes: 0, owner: "alice", quota: quota)
        XCTAssertEqual(capacity.grow(by: 40, owner: "alice", quota: quota), nil)
        XCTAssertEqual(
            capacity.grow(by: 1, owner: "alice", quota: quota), .ownerBytes(owner: "alice", limit: 100))
        XCTAssertNoThrow(try capacity.reserve(bytes: 500, owner: "bob", quota: quota.with(maxBytes: 900)))
        capacity.releaseBytes(60, owner: "alice")
        XCTAssertEqual(capacity.usage(of: "alice"), Capacity.Usage(tasks: 1, bytes: 40))
    }

    func testTheServersBoundsHoldWhateverTheQuota() throws {
        let capacity = Capacity(maxTasks: 1, maxBytes: nil)
        try capacity.reserve(bytes: 0, owner: "alice", quota: Capacity.Quota(maxTasks: 5))
        XCTAssertThrowsError(try capacity.reserve(bytes: 0, owner: "bob", quota: nil)) { error in
            XCTAssertEqual(error as? Capacity.Refusal, .tooManyTasks(limit: 1))
        }
    }

    func testOwnersThatHoldNothingAreForgotten() throws {
        let capacity = Capacity(maxTasks: 10, maxBytes: nil)
        try capacity.reserve(bytes: 5, owner: "alice", quota: nil)
        capacity.cancel(bytes: 5, owner: "alice")
        XCTAssertEqual(capacity.usage(of: "alice"), Capacity.Usage())
        XCTAssertEqual(capacity.usage.tasks, 0)
    }
}

extension Capacity.Quota {
    fileprivate func with(maxBytes: UInt64) -> Capacity.Quota {
        Capacity.Quota(maxTasks: maxTasks, maxBytes: maxBytes)
    }
}
