import XCTest

@testable import FerryServer

/// Connections never take the descriptors that pushes and the spool need.
final class DescriptorBudgetTests: XCTestCase {
    func testAGenerousLimitKeepsWhatWasAsked() {
        let budget = DescriptorBudget.plan(
            descriptors: 1 << 20, requestedConnections: 1024, workers: 4, loops: 2)
        XCTAssertEqual(budget.maxConnections, 1024)
        XCTAssertEqual(budget.connectionCap, 1088)
        XCTAssertFalse(budget.lowered)
    }

    func testASmallLimitLowersTheConnectionsAndKeepsTheReserve() {
        for descriptors in [256, 1024, 4096] {
            let budget = DescriptorBudget.plan(
                descriptors: descriptors, requestedConnections: 10_000, workers: 4, loops: 2)
            XCTAssertTrue(budget.lowered)
            let reserve = DescriptorBudget.fixed + 4 * DescriptorBudget.perPush + 2 * DescriptorBudget.perLoop
            XCTAssertLessThanOrEqual(reserve + 2 * budget.connectionCap + budget.lingeringCap, descriptors)
            XCTAssertGreaterThan(budget.maxConnections, descriptors / 8, "the limit is not wasted")
        }
    }
}
