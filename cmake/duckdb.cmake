# DuckDB's C API: header + prebuilt library of the same version. scripts/setup.sh puts the pinned
# npm copies in third_party/duckdb; -DDUCKDB_ROOT=DIR accepts an official release zip unpacked
# elsewhere (duckdb.h and libduckdb.so side by side, or in include/ and lib/).
set(DUCKDB_ROOT "${CMAKE_SOURCE_DIR}/third_party/duckdb" CACHE PATH "Where duckdb.h and libduckdb.so live")
find_path(DUCKDB_INCLUDE_DIR duckdb.h PATHS ${DUCKDB_ROOT} ${DUCKDB_ROOT}/include NO_DEFAULT_PATH)
find_library(DUCKDB_LIBRARY duckdb PATHS ${DUCKDB_ROOT} ${DUCKDB_ROOT}/lib NO_DEFAULT_PATH)
if(NOT DUCKDB_INCLUDE_DIR OR NOT DUCKDB_LIBRARY)
  message(FATAL_ERROR "DuckDB not found under ${DUCKDB_ROOT}: run scripts/setup.sh or pass -DDUCKDB_ROOT=")
endif()
add_library(duckdb SHARED IMPORTED GLOBAL)
set_target_properties(duckdb PROPERTIES
  IMPORTED_LOCATION ${DUCKDB_LIBRARY}
  IMPORTED_NO_SONAME ON
  INTERFACE_INCLUDE_DIRECTORIES ${DUCKDB_INCLUDE_DIR})
get_filename_component(DUCKDB_LIBRARY_DIR ${DUCKDB_LIBRARY} DIRECTORY)
# Binaries find the library where it was at build time (absolute rpath; the repo is not relocated).
set(CMAKE_BUILD_RPATH ${DUCKDB_LIBRARY_DIR})
set(CMAKE_INSTALL_RPATH ${DUCKDB_LIBRARY_DIR})
