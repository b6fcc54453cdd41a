//! IDX, CIFAR-10 and image-folder loading, the quantisation of intensities into K levels, and
//! the errors for corrupt input.

use std::io::Write;

use crate::common;
use flate2::Compression;
use flate2::write::GzEncoder;

use common::{cifar_records, f32_bytes, idx_bytes, npy};
use pixelcnn::data::{
    DataSource, Embeddings, FolderOptions, ImageSet, cifar, dequantize, idx, quantize,
};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn error_of(bytes: &[u8]) -> String {
    idx::parse(bytes).unwrap_err().to_string()
}

#[test]
fn parses_raw_and_gzipped_idx() {
    let body: Vec<u8> = (0..24).collect();
    let raw = idx_bytes(&[2, 3, 4], &body);
    let expected = idx::IdxArray {
        dims: vec![2, 3, 4],
        data: body,
    };
    assert_eq!(idx::parse(&raw).unwrap(), expected);
    assert_eq!(idx::parse(&gzip(&raw)).unwrap(), expected);
}

#[test]
fn corrupt_idx_files_give_clear_errors() {
    assert!(error_of(&[0, 0]).contains("too short"));
    assert!(error_of(&[0x12, 0x34, 0x08, 0x01, 0, 0, 0, 0]).contains("bad magic"));
    assert!(error_of(&[0, 0, 0x0D, 1, 0, 0, 0, 1, 0]).contains("not supported"));
    assert!(error_of(&[0, 0, 8, 3, 0, 0, 0, 1]).contains("truncated IDX header"));
    let truncated = idx_bytes(&[2, 3, 4], &[7; 20]);
    assert!(error_of(&truncated).contains("file truncated"));
    let too_long = idx_bytes(&[2, 2], &[7; 5]);
    assert!(error_of(&too_long).contains("need 4"));
    let mut broken_gzip = gzip(&idx_bytes(&[4], &[1, 2, 3, 4]));
    broken_gzip.truncate(broken_gzip.len() / 2);
    assert!(error_of(&broken_gzip).contains("corrupt gzip"));
}

#[test]
fn idx_with_valid_dims_but_overflowing_size_is_rejected() {
    let huge = idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[]);
    assert!(error_of(&huge).contains("more than the ceiling"));
}

#[test]
fn images_and_labels_must_agree() {
    let images = idx::IdxArray {
        dims: vec![3, 2, 2],
        data: vec![0; 12],
    };
    let labels = |n: usize| idx::IdxArray {
        dims: vec![n],
        data: vec![1; n],
    };
    let set = ImageSet::from_idx(images.clone(), Some(labels(3))).unwrap();
    assert_eq!((set.len(), set.height, set.width), (3, 2, 2));
    let mismatch = ImageSet::from_idx(images.clone(), Some(labels(4))).unwrap_err();
    assert!(mismatch.to_string().contains("3 images but 4 labels"));
    let flat = idx::IdxArray {
        dims: vec![12],
        data: vec![0; 12],
    };
    let wrong_dims = ImageSet::from_idx(flat, None).unwrap_err();
    assert!(wrong_dims.to_string().contains("3 dimensions"));
}

#[test]
fn quantisation_follows_floor_v_k_over_256() {
    assert_eq!(quantize(0, 4), 0);
    assert_eq!(quantize(63, 4), 0);
    assert_eq!(quantize(64, 4), 1);
    assert_eq!(quantize(191, 4), 2);
    assert_eq!(quantize(255, 4), 3);
    // Binarised: a threshold at 128.
    assert_eq!(quantize(127, 2), 0);
    assert_eq!(quantize(128, 2), 1);
    // 256 levels keep every value.
    assert!((0..=255u8).all(|v| quantize(v, 256) == v));
    // Back to intensities: levels spread evenly over 0..=255.
    assert_eq!(
        (0..4).map(|l| dequantize(l, 4)).collect::<Vec<_>>(),
        [0, 85, 170, 255]
    );
    assert_eq!((dequantize(0, 2), dequantize(1, 2)), (0, 255));
    assert!((0..=255u8).all(|v| dequantize(v, 256) == v));
}

#[test]
fn loads_a_folder_of_gzipped_and_raw_files() {
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..20 * 5 * 6).map(|i| (i % 256) as u8).collect();
    std::fs::write(
        dir.path().join("train-images-idx3-ubyte.gz"),
        gzip(&idx_bytes(&[20, 5, 6], &pixels)),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte"),
        idx_bytes(&[20], &[3; 20]),
    )
    .unwrap();
    let source = DataSource::Idx(dir.path().to_path_buf());
    let (train, validation) = source.training(None).unwrap();
    assert_eq!((train.len(), validation.len()), (18, 2));
    assert_eq!((train.height, train.width), (5, 6));
    assert_eq!(validation.image(1), &pixels[19 * 30..]);
    let missing = source.test(None).unwrap_err().to_string();
    assert!(missing.contains("no t10k-images-idx3-ubyte"), "{missing}");
}

#[test]
fn mismatched_label_file_in_a_folder_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t10k-images-idx3-ubyte"),
        idx_bytes(&[2, 2, 2], &[0; 8]),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("t10k-labels-idx1-ubyte"),
        idx_bytes(&[5], &[0; 5]),
    )
    .unwrap();
    let error = DataSource::Idx(dir.path().to_path_buf())
        .test(None)
        .unwrap_err()
        .to_string();
    assert!(error.contains("t10k-images-idx3-ubyte"), "{error}");
    assert!(error.contains("2 images but 5 labels"), "{error}");
}

#[test]
fn embedded_mnist_is_the_test_set_split_9000_1000() {
    let (train, validation) = DataSource::Embedded.training(None).unwrap();
    assert_eq!((train.len(), validation.len()), (9_000, 1_000));
    assert_eq!((train.height, train.width), (28, 28));
    assert_eq!(validation.labels.as_ref().map(Vec::len), Some(1_000));
    assert_eq!(DataSource::Embedded.test(None).unwrap(), validation);
}

#[test]
fn reads_conditioning_vectors_from_npy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.npy");
    let values = [0.5f32, -1.0, 2.0, 3.5, 0.0, 1.25];
    std::fs::write(&path, npy("<f4", &[3, 2], false, &f32_bytes(&values))).unwrap();
    let embeddings = Embeddings::read_npy(&path).unwrap();
    assert_eq!((embeddings.len(), embeddings.dim), (3, 2));
    assert_eq!(embeddings.row(1), &[2.0, 3.5]);
}

#[test]
fn bad_npy_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.npy");
    let error = |bytes: Vec<u8>| {
        std::fs::write(&path, bytes).unwrap();
        Embeddings::read_npy(&path).unwrap_err().to_string()
    };
    let body = f32_bytes(&[1.0; 6]);
    assert!(error(b"not numpy at all".to_vec()).contains("not a valid .npy file"));
    assert!(error(npy("<f4", &[6], false, &body)).contains("2-dimensional"));
    assert!(error(npy("<f4", &[3, 2], true, &body)).contains("Fortran order"));
    assert!(error(npy("<f4", &[30, 2], false, &body)).contains("truncated"));
    // More data than the shape announces is refused before it is read.
    let message = error(npy("<f4", &[1, 2], false, &body));
    assert!(
        message.contains("152 bytes, but the header's shape and type need 136"),
        "{message}"
    );
    assert!(error(npy("<f4", &[3, 0], false, &[])).contains("dimension 0"));
    assert!(error(npy("<i4", &[3, 2], false, &body)).contains("float32"));
    let nan = f32_bytes(&[1.0, 2.0, 3.0, f32::NAN, 5.0, 6.0]);
    let message = error(npy("<f4", &[3, 2], false, &nan));
    assert!(message.contains("value 1 of vector 1 is NaN"), "{message}");
    // A structured dtype (found by fuzzing: deeply nested brackets hung the header parser).
    let nested = format!("[{}('a', '<f4')]{}", "[".repeat(40), "]".repeat(40));
    assert!(error(npy(&nested, &[3, 2], false, &body)).contains("structured or nested"));
}

#[test]
fn conditioning_vectors_must_match_the_images() {
    let set = ImageSet::from_idx(
        idx::IdxArray {
            dims: vec![3, 2, 2],
            data: vec![0; 12],
        },
        None,
    )
    .unwrap();
    let two = Embeddings {
        dim: 4,
        values: vec![0.0; 8],
    };
    let error = set.clone().with_embeddings(two).unwrap_err().to_string();
    assert!(
        error.contains("3 images but 2 conditioning vectors"),
        "{error}"
    );
    let three = Embeddings {
        dim: 4,
        values: (0..12).map(|v| v as f32).collect(),
    };
    let (first, last) = set.with_embeddings(three).unwrap().split_tail(1);
    assert_eq!(first.embeddings.unwrap().len(), 2);
    assert_eq!(last.embeddings.unwrap().row(0), &[8.0, 9.0, 10.0, 11.0]);
}

#[test]
fn cifar10_records_become_rgb_planes_with_labels() {
    let set = cifar::parse(&cifar_records(12)).unwrap();
    assert_eq!(
        (set.len(), set.channels, set.height, set.width),
        (12, 3, 32, 32)
    );
    assert_eq!(
        set.labels.as_deref().unwrap()[..],
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    );
    let image = set.image(7);
    assert_eq!(image.len(), 3072);
    assert_eq!(
        (image[0], image[1], image[1024], image[2048]),
        (255, 7, 14, 21)
    );
    let batch = set.batch(&[7], 256, &burn::prelude::Device::flex());
    assert_eq!(batch.dims(), [1, 3, 32, 32]);
}

#[test]
fn corrupt_cifar10_files_are_refused() {
    let records = cifar_records(2);
    for (bytes, needle) in [
        (&records[..3073 + 100], "not a whole number of 3073-byte"),
        (&[][..], "not a whole number"),
        (&[10u8; 3073][..], "record 0 has label 10"),
    ] {
        let error = cifar::parse(bytes).unwrap_err().to_string();
        assert!(error.contains(needle), "{error}");
    }
}

#[test]
fn cifar10_folder_splits_training_batches_and_reads_the_test_batch() {
    let dir = tempfile::tempdir().unwrap();
    // The published archive unpacks into cifar-10-batches-bin/.
    let batches = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&batches).unwrap();
    std::fs::write(batches.join("data_batch_1.bin"), cifar_records(12)).unwrap();
    std::fs::write(batches.join("data_batch_2.bin"), cifar_records(8)).unwrap();
    std::fs::write(batches.join("test_batch.bin"), cifar_records(5)).unwrap();
    let source = DataSource::Cifar10(dir.path().to_path_buf());
    let (train, validation) = source.training(None).unwrap();
    assert_eq!((train.len(), validation.len()), (18, 2));
    // The held-out images are the last two of batch 2: its images 6 and 7.
    assert_eq!(validation.image(1)[1], 7);
    assert_eq!(source.test(None).unwrap().len(), 5);

    std::fs::write(batches.join("test_batch.bin"), &cifar_records(1)[..3000]).unwrap();
    let error = source.test(None).unwrap_err().to_string();
    assert!(
        error.contains("test_batch.bin") && error.contains("truncated"),
        "{error}"
    );
    let empty = tempfile::tempdir().unwrap();
    let error = DataSource::Cifar10(empty.path().to_path_buf())
        .training(None)
        .unwrap_err()
        .to_string();
    assert!(error.contains("no data_batch_1.bin"), "{error}");
}

/// Writes a `width`×`height` RGB PNG filled with `colour`.
fn png(path: &std::path::Path, width: u32, height: u32, colour: [u8; 3]) {
    image::RgbImage::from_pixel(width, height, image::Rgb(colour))
        .save(path)
        .unwrap();
}

#[test]
fn image_folder_with_class_folders_gives_labels_and_a_deterministic_split() {
    let dir = tempfile::tempdir().unwrap();
    for (class, colour) in [("cats", [200, 10, 10]), ("dogs", [10, 10, 200])] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
        for i in 0..10 {
            // Wide images: the central 8×8 square kept, then resized to 4×4.
            png(
                &dir.path().join(class).join(format!("{i:02}.png")),
                12,
                8,
                colour,
            );
        }
    }
    std::fs::write(dir.path().join("cats").join("notes.txt"), "not an image").unwrap();
    let options = FolderOptions {
        size: 4,
        channels: None,
    };
    let source = DataSource::Images(dir.path().to_path_buf(), options);
    let (train, validation) = source.training(None).unwrap();
    assert_eq!((train.channels, train.height, train.width), (3, 4, 4));
    assert_eq!((train.len(), validation.len()), (18, 2));
    // Every tenth image is held out: the last cat and the last dog.
    assert_eq!(validation.labels.as_deref(), Some(&[0, 1][..]));
    assert_eq!(source.test(None).unwrap(), validation);
    let dog = validation.image(1);
    assert_eq!((dog[0], dog[16], dog[32]), (10, 10, 200));

    let gray = DataSource::Images(
        dir.path().to_path_buf(),
        FolderOptions {
            size: 2,
            channels: Some(1),
        },
    );
    let (train, _) = gray.training(None).unwrap();
    assert_eq!((train.channels, train.image(0).len()), (1, 4));
}

#[test]
fn image_folder_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let options = FolderOptions {
        size: 4,
        channels: None,
    };
    let load = |dir: &std::path::Path| {
        DataSource::Images(dir.to_path_buf(), options)
            .training(None)
            .unwrap_err()
            .to_string()
    };
    assert!(load(dir.path()).contains("no PNG or JPEG images"));
    png(&dir.path().join("a.png"), 4, 4, [1, 2, 3]);
    std::fs::write(dir.path().join("b.png"), b"\x89PNG\r\n\x1a\n broken").unwrap();
    let error = load(dir.path());
    assert!(
        error.contains("b.png") && error.contains("cannot read the image"),
        "{error}"
    );
    std::fs::remove_file(dir.path().join("b.png")).unwrap();
    assert!(load(dir.path()).contains("at least 2 training images"));
    std::fs::create_dir(dir.path().join("class")).unwrap();
    png(&dir.path().join("class").join("c.png"), 4, 4, [1, 2, 3]);
    assert!(load(dir.path()).contains("both images and class sub-folders"));
}
