import FerryCore
import XCTest

final class QuantitiesTests: XCTestCase {
    func testSizesTakeBinarySuffixes() {
        let table: [(String, UInt64?)] = [
            ("0", 0), ("512", 512), ("1K", 1024), ("64k", 65536), ("10M", 10 << 20), ("2G", 2 << 30),
            ("1MiB", 1 << 20), ("3GB", 3 << 30), ("", nil), ("K", nil), ("1.5G", nil), ("-1", nil),
            ("1X", nil), ("99999999999999999999", nil), ("20000000000G", nil),
        ]
        for (text, bytes) in table { XCTAssertEqual(ByteCount.parse(text), bytes, text) }
    }

    func testDurationsTakeSecondsOrSuffixes() {
        let table: [(String, Double?)] = [
            ("1", 1), ("0.5", 0.5), ("500ms", 0.5), ("2s", 2), ("1m", 60), ("1h", 3600), ("", nil),
            ("ms", nil), ("-1", nil), ("1d", nil), ("abc", nil),
        ]
        for (text, seconds) in table { XCTAssertEqual(TimeSpan.parse(text), seconds, text) }
    }
}
