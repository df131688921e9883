# libmailroom's private namespace, checked in the build tree (test_install.sh checks
# the installed libraries the same way). Included by tests/unit/lib.cmake.
#
#   packaging_namespace_static  namespace_app.c, which defines buf_append, job_decode,
#   packaging_namespace_shared  keys_init, script_run, log_msg and more of the library's
#                               internal names, linked against libmailroom.a / .so:
#                               it must link, and the library must never call it
#   packaging_exports           nm: libmailroom.a exports exactly what libmailroom.so
#                               does, and that is mailroom_* only

foreach(_kind static shared)
  set(_t namespace_app_${_kind})
  add_executable(${_t} ${CMAKE_CURRENT_LIST_DIR}/namespace_app.c)
  if(_kind STREQUAL static)
    target_link_libraries(${_t} PRIVATE mailroom_static mailroom_build_flags)
  else()
    target_link_libraries(${_t} PRIVATE mailroom mailroom_build_flags)
  endif()
  set_target_properties(${_t} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  add_test(NAME packaging_namespace_${_kind} COMMAND ${_t})
  set_tests_properties(packaging_namespace_${_kind} PROPERTIES LABELS unit TIMEOUT 60)
endforeach()

add_test(NAME packaging_exports
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/check_exports.sh
          $<TARGET_FILE:mailroom_static> $<TARGET_FILE:mailroom>)
set_tests_properties(packaging_exports PROPERTIES LABELS unit TIMEOUT 60)
