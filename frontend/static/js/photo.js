// A shopper's photo: downscaled in the browser before upload, then cropped with cropperjs.

export const MAX_SIDE = 1024; // a 12 MP phone photo becomes ~150 KB of JPEG: fast on a phone network
const JPEG_QUALITY = 0.88;

/**
 * The photo as a JPEG no longer than MAX_SIDE on its longest side (EXIF orientation applied).
 * Resolves to {blob, width, height, originalWidth, originalHeight}.
 */
export async function downscale(file) {
  if (!file || !String(file.type || "image/").startsWith("image/")) {
    throw new Error("that file is not an image: choose a JPEG, PNG or WebP photo");
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    throw new Error("this browser cannot read that photo; try a JPEG or PNG");
  }
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const width = Math.max(1, Math.round(bitmap.width * scale));
  const height = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(bitmap, 0, 0, width, height);
  const original = { originalWidth: bitmap.width, originalHeight: bitmap.height };
  bitmap.close();
  const blob = await new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("could not encode the photo"))), "image/jpeg", JPEG_QUALITY),
  );
  return { blob: new File([blob], "photo.jpg", { type: "image/jpeg" }), width, height, ...original };
}

/** The first image in a drop or paste, or null. */
export function imageFrom(dataTransfer) {
  if (!dataTransfer) return null;
  for (const item of dataTransfer.items || []) {
    if (item.kind === "file" && item.type.startsWith("image/")) return item.getAsFile();
  }
  for (const file of dataTransfer.files || []) {
    if (file.type.startsWith("image/")) return file;
  }
  return null;
}

/**
 * A crop box over `img` (cropperjs, loaded as the global `Cropper`): a default box around the
 * centre, corners to resize and drag to move, touch and mouse alike.
 */
export class CropBox {
  constructor(img) {
    this.img = img;
    this.cropper = null;
  }

  async show(blob) {
    this.destroy();
    if (this.img.src) URL.revokeObjectURL(this.img.src);
    this.img.src = URL.createObjectURL(blob);
    await this.img.decode().catch(() => undefined);
    this.cropper = new window.Cropper(this.img, {
      viewMode: 1,
      autoCropArea: 0.8,
      zoomable: false,
      rotatable: false,
      scalable: false,
      movable: false,
      background: false,
      responsive: true,
    });
  }

  /** The box as fractions of the photo {x0, y0, x1, y1}, or null for the whole photo. */
  crop() {
    if (!this.cropper) return null;
    const d = this.cropper.getData();
    const w = this.img.naturalWidth;
    const h = this.img.naturalHeight;
    if (!w || !h || !d.width || !d.height) return null;
    const clamp = (v) => Math.min(1, Math.max(0, v));
    const box = {
      x0: clamp(d.x / w),
      y0: clamp(d.y / h),
      x1: clamp((d.x + d.width) / w),
      y1: clamp((d.y + d.height) / h),
    };
    // the whole photo needs no crop; rounding keeps the request readable
    if (box.x0 < 0.005 && box.y0 < 0.005 && box.x1 > 0.995 && box.y1 > 0.995) return null;
    for (const k of Object.keys(box)) box[k] = Math.round(box[k] * 10000) / 10000;
    return box.x1 > box.x0 && box.y1 > box.y0 ? box : null;
  }

  destroy() {
    if (this.cropper) this.cropper.destroy();
    this.cropper = null;
  }
}
