# cmake -DSCRIPT=scripts/fetch-data -DMNIST=<offline mnist dir> -DWORK=<scratch> -P FetchDataVerify.cmake
# scripts/fetch-data --verify must accept the offline MNIST test files (a
# re-compression of the official ones: only their decompressed md5 can match)
# (and Debian's Fashion-MNIST, when installed) and must reject a damaged copy.
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/good/mnist" "${WORK}/bad/mnist")
foreach(f t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
  file(COPY "${MNIST}/${f}" DESTINATION "${WORK}/good/mnist")
endforeach()
file(COPY "${MNIST}/t10k-images-idx3-ubyte.gz" DESTINATION "${WORK}/bad/mnist")
# A valid gzip stream whose content is not the official label file.
file(WRITE "${WORK}/labels" "not the MNIST labels\n")
file(ARCHIVE_CREATE OUTPUT "${WORK}/bad/mnist/t10k-labels-idx1-ubyte.gz" PATHS "${WORK}/labels"
     FORMAT raw COMPRESSION GZip)

# Debian's dataset-fashion-mnist is also a re-compression: check it too when installed.
set(fmnist /usr/share/datasets/fashion-mnist)
set(want 2)
if(EXISTS "${fmnist}/train-images-idx3-ubyte.gz")
  file(MAKE_DIRECTORY "${WORK}/good/fashion-mnist")
  foreach(f train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
    file(CREATE_LINK "${fmnist}/${f}" "${WORK}/good/fashion-mnist/${f}" SYMBOLIC)
  endforeach()
  set(want 6)
endif()
execute_process(COMMAND "${SCRIPT}" --verify "${WORK}/good" mnist fashion-mnist RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fetch-data --verify rejected the offline MNIST test files")
endif()
string(REGEX MATCHALL "ok +[^\n]*-ubyte.gz" oks "${out}")
list(LENGTH oks n)
if(NOT n EQUAL want)
  message(FATAL_ERROR "expected ${want} files to verify, got ${n}")
endif()

execute_process(COMMAND "${SCRIPT}" --verify "${WORK}/bad" mnist RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(rc EQUAL 0 OR NOT out MATCHES "BAD +[^\n]*t10k-labels-idx1-ubyte.gz")
  message(FATAL_ERROR "fetch-data --verify accepted a damaged label file")
endif()

execute_process(COMMAND "${SCRIPT}" --verify "${WORK}/empty" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
if(rc EQUAL 0)
  message(FATAL_ERROR "fetch-data --verify succeeded on a folder with no data")
endif()
file(REMOVE_RECURSE "${WORK}")
