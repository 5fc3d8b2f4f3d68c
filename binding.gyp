{
  "targets": [
    {
      "target_name": "certsep_native",
      "sources": ["proto/native/certsep_native.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "cflags_cc": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
