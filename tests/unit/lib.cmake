# Unit tests of libmailroom (lib/), one file per module of the library: included from
# tests/CMakeLists.txt (after CMOCKA is found), with the private-namespace tests of
# tests/packaging/namespace.cmake.
#
# They use the public headers only and link the static library, as an application
# does; test_lib_batch links the library's objects itself instead, with realloc
# wrapped (-Wl,--wrap=realloc), so that it can make the library's own allocations fail.

function(mailroom_lib_test name)
  add_executable(${name} ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/${name}.c)
  target_link_libraries(${name} PRIVATE ${ARGN} PkgConfig::CMOCKA mailroom_build_flags)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 60)
endfunction()

mailroom_lib_test(test_lib_handle mailroom_static)
mailroom_lib_test(test_lib_email_json mailroom_static)
mailroom_lib_test(test_lib_helpers mailroom_static)

# The library's objects, not the archive: --wrap only reaches calls between objects
# that are linked into the program.
mailroom_lib_test(test_lib_batch
  PkgConfig::HIREDIS PkgConfig::IDN2 json-c::json-c OpenSSL::Crypto Threads::Threads)
target_sources(test_lib_batch PRIVATE
  $<TARGET_OBJECTS:mailroom_lib_objects> $<TARGET_OBJECTS:mailroom_common>)
add_dependencies(test_lib_batch mailroom_lib_objects mailroom_common)
target_include_directories(test_lib_batch PRIVATE
  ${PROJECT_SOURCE_DIR}/include ${PROJECT_BINARY_DIR}/include)
target_link_options(test_lib_batch PRIVATE -Wl,--wrap=realloc)

include(${CMAKE_CURRENT_LIST_DIR}/../packaging/namespace.cmake)

# The webhook signature against tests/vectors/webhook.json (read with json-c).
mailroom_lib_test(test_lib_webhook_sig mailroom_static json-c::json-c)
target_compile_definitions(test_lib_webhook_sig PRIVATE MAILROOM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")

# The library's internal pieces of the job listing (lib/jobitem.c): linked from its
# objects, as an application never reaches them.
mailroom_lib_test(test_lib_jobitem
  PkgConfig::HIREDIS PkgConfig::IDN2 json-c::json-c OpenSSL::Crypto Threads::Threads)
target_sources(test_lib_jobitem PRIVATE
  $<TARGET_OBJECTS:mailroom_lib_objects> $<TARGET_OBJECTS:mailroom_common>)
add_dependencies(test_lib_jobitem mailroom_lib_objects mailroom_common)
target_include_directories(test_lib_jobitem PRIVATE
  ${PROJECT_SOURCE_DIR}/include ${PROJECT_BINARY_DIR}/include ${PROJECT_SOURCE_DIR}/lib
  ${PROJECT_SOURCE_DIR}/common ${MAILROOM_GENERATED_DIR})
