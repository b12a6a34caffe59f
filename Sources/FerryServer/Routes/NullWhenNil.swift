/// An optional field that JSON always shows, as `null` when there is no value: the
/// synthesized `Encodable` leaves a nil optional out, and clients of the API read a field
/// that is there (null on the last page, null until a task fails).
// swift-format-ignore: UseSynthesizedInitializer
@propertyWrapper
struct NullWhenNil<Value: Encodable>: Encodable {
    var wrappedValue: Value?

    // Spelled out, though the compiler would synthesize the same: a memberwise
    // initializer of a type using the wrapper takes `Value?` only when the wrapper
    // declares init(wrappedValue:) itself.
    init(wrappedValue: Value?) {
        self.wrappedValue = wrappedValue
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue {
            try container.encode(wrappedValue)
        } else {
            try container.encodeNil()
        }
    }
}
