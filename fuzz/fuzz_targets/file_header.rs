#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmsfs_fuzz_bodies::file_header(data));
