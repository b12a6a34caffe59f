/// Ferry's release, as `ferry --version` prints it.
public enum FerryVersion {
    public static let current = "0.7.0"
}
