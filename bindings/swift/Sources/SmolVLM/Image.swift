import CSmolVLM
import Foundation
#if canImport(CoreGraphics)
import CoreGraphics
#endif

/// A decoded 8-bit RGB image, ready to pass to a generation. Immutable; share it freely.
public final class Image: @unchecked Sendable {
    /// How raw pixels are laid out.
    public enum PixelFormat: Sendable {
        case rgb8
        case rgba8

        var raw: Int32 {
            switch self {
            case .rgb8: return Int32(SMOLVLM_PIXEL_FORMAT_RGB8.rawValue)
            case .rgba8: return Int32(SMOLVLM_PIXEL_FORMAT_RGBA8.rawValue)
            }
        }

        var bytesPerPixel: Int { self == .rgb8 ? 3 : 4 }
    }

    let handle: OpaquePointer

    private init(_ make: (UnsafeMutablePointer<OpaquePointer?>) -> smolvlm_status) throws {
        var out: OpaquePointer?
        try check(make(&out))
        guard let out else { throw SmolVLMError(status: 9, message: "the library returned no image") }
        handle = out
    }

    /// Reads and decodes an image file (PNG, JPEG, BMP, PNM, TGA, GIF, WebP, TIFF).
    public convenience init(path: String) throws {
        try self.init { out in smolvlm_image_from_file(path, out) }
    }

    /// Decodes an encoded image (PNG, JPEG, BMP, PNM, GIF, WebP, TIFF).
    public convenience init(data: Data) throws {
        try self.init { out in
            data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                smolvlm_image_from_bytes(raw.bindMemory(to: UInt8.self).baseAddress, raw.count, out)
            }
        }
    }

    /// Copies raw pixels: `height` rows of `bytesPerRow` bytes (default: tightly packed), each
    /// starting with `width` pixels in `format`.
    public convenience init(
        pixels: UnsafeRawBufferPointer, width: Int, height: Int, bytesPerRow: Int? = nil,
        format: PixelFormat = .rgb8
    ) throws {
        let stride = bytesPerRow ?? width * format.bytesPerPixel
        guard width > 0, height > 0, let w = UInt32(exactly: width), let h = UInt32(exactly: height),
              stride >= width * format.bytesPerPixel,
              pixels.count >= stride * (height - 1) + width * format.bytesPerPixel
        else {
            throw SmolVLMError(
                status: 2,
                message: "\(pixels.count) bytes cannot hold \(width)×\(height) pixels with rows of \(stride) bytes")
        }
        try self.init { out in
            smolvlm_image_from_pixels(
                pixels.bindMemory(to: UInt8.self).baseAddress, w, h, stride, format.raw, out)
        }
    }

    #if canImport(CoreGraphics)
    /// Draws `cgImage` into 8-bit RGBA (sRGB) and copies those pixels.
    public convenience init(cgImage: CGImage) throws {
        let width = cgImage.width, height = cgImage.height
        let bytesPerRow = width * 4
        var buffer = [UInt8](repeating: 0, count: bytesPerRow * height)
        let drawn: Bool = buffer.withUnsafeMutableBytes { raw in
            guard let space = CGColorSpace(name: CGColorSpace.sRGB),
                  let context = CGContext(
                    data: raw.baseAddress, width: width, height: height, bitsPerComponent: 8,
                    bytesPerRow: bytesPerRow, space: space,
                    bitmapInfo: CGImageAlphaInfo.premultipliedLast.rawValue)
            else { return false }
            context.draw(cgImage, in: CGRect(x: 0, y: 0, width: width, height: height))
            return true
        }
        guard drawn, let w = UInt32(exactly: width), let h = UInt32(exactly: height) else {
            throw SmolVLMError(status: 5, message: "could not draw the CGImage into an RGBA bitmap")
        }
        try self.init { out in
            buffer.withUnsafeBytes { raw in
                smolvlm_image_from_pixels(
                    raw.bindMemory(to: UInt8.self).baseAddress, w, h, bytesPerRow,
                    PixelFormat.rgba8.raw, out)
            }
        }
    }
    #endif

    /// Sets the process-wide limit on an image file's pixel count, read from its header before
    /// decoding (0: the default, 178,956,970, where Pillow refuses a decompression bomb), and
    /// returns the previous limit. Larger files throw ``SmolVLMError/Code/badImage``.
    @discardableResult
    public static func setMaxPixels(_ maxPixels: UInt64) -> UInt64 {
        smolvlm_set_max_image_pixels(maxPixels)
    }

    deinit {
        smolvlm_image_free(handle)
    }
}
