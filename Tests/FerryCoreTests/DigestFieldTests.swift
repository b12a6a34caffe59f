import FerryCore
import XCTest

@testable import FerryServer

/// The digest fields (RFC 9530, tus's Upload-Checksum) and tus's Upload-Metadata, read as
/// their specifications say.
final class DigestFieldTests: XCTestCase {
    func testRFC9530DictionariesKeepTheKnownAlgorithmsAndIgnoreTheRest() throws {
        var digests = ExpectedDigests()
        try digests.add(
            rfc9530Field: "Content-Digest",
            value: "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, md5=:abc=:, unixsum=30637")
        XCTAssertEqual(digests.algorithms, [.sha256])
        XCTAssertEqual(digests.values.first?.digest.hexString.prefix(8), "5f8f04f6")
        try digests.add(
            rfc9530Field: "Repr-Digest", value: "sha-512=:\(String(repeating: "A", count: 86))==:")
        XCTAssertEqual(digests.algorithms, [.sha256, .sha512])
        // Only unknown algorithms: nothing to check, nothing refused.
        var none = ExpectedDigests()
        try none.add(rfc9530Field: "Content-Digest", value: "sha=:AAAA:, id-sha-256=:AAAA:")
        XCTAssertTrue(none.isEmpty)
    }

    func testUnreadableDigestFieldsAreRefused() {
        for value in ["sha-256", "sha-256=abc", "sha-256=:AAAA:", "sha-256=\"x\"", ",,", "sha-256=:%%%:"] {
            var digests = ExpectedDigests()
            XCTAssertThrowsError(try digests.add(rfc9530Field: "Content-Digest", value: value), value)
        }
        for value in ["sha1", "sha1 a b", "crc32 AAAAAA==", "sha256 AAAA", "md5 !!!"] {
            var digests = ExpectedDigests()
            XCTAssertThrowsError(try digests.add(tusChecksum: value), value)
        }
    }

    func testAMismatchNamesTheFieldAndTheAlgorithm() throws {
        var digests = ExpectedDigests()
        try digests.add(tusChecksum: "md5 \(Data(count: 16).base64EncodedString())")
        XCTAssertEqual(digests.mismatch([.md5: [UInt8](repeating: 0, count: 16)])?.field, nil)
        let mismatch = digests.mismatch([.md5: [UInt8](repeating: 1, count: 16)])
        XCTAssertEqual(mismatch?.field, "Upload-Checksum")
        XCTAssertEqual(mismatch?.algorithm, .md5)
    }

    func testTusMetadataDecodesPairsAndNamesTheDestination() throws {
        let metadata = try TusMetadata(
            "container YzE=,path L3NydiUyMC8=, filename bm90ZXMudHh0,is_confidential,mode MDY0MA==")
        XCTAssertEqual(metadata.contractValues(UploadContract.containerHeader), ["c1"])
        XCTAssertEqual(metadata.contractValues("x-file-path"), ["/srv%20/"])
        XCTAssertEqual(metadata.contractValues(UploadContract.hostPathHeader), ["notes.txt"])
        XCTAssertEqual(metadata.contractValues(UploadContract.modeHeader), ["0640"])
        XCTAssertEqual(metadata.values["is_confidential"], .some(nil))
        XCTAssertTrue(try TusMetadata("").values.isEmpty, "tuspy sends an empty field")
        for field in [
            "container YzE=,container YzI=", "container !!", "a b c", ",container YzE=",
        ] {
            XCTAssertThrowsError(try TusMetadata(field), field) { error in
                guard case APIError.badTusHeader = error else { return XCTFail("\(error)") }
            }
        }
    }
}
