# The unit tests (cmocka), one file per module of common/ and consumer/:
# tests/unit/test_<module>.c tests <module>.c. Each is one ctest test labelled "unit".

# mailroom_unit_test(NAME): tests/unit/NAME.c linked with the consumer's and common's
# objects.
function(mailroom_unit_test name)
  add_executable(${name} ${CMAKE_CURRENT_LIST_DIR}/${name}.c)
  target_link_libraries(${name} PRIVATE mailroom_consumer_core mailroom_smtp mailroom_common
                        PkgConfig::CMOCKA)
  target_compile_definitions(${name} PRIVATE
    MAILROOM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit)
endfunction()

# common/
foreach(t test_address test_clock test_duration test_error test_job test_keyring test_keys
          test_rconn test_script test_sig test_state test_ulid)
  mailroom_unit_test(${t})
endforeach()
# consumer/ (and common/log.c, which only the consumer links)
foreach(t test_lanes test_log test_mime test_options test_worker test_metrics test_http test_shape)
  mailroom_unit_test(${t})
endforeach()

# The SMTP engine's tests: consumer/smtp/ alone, without the rest of the consumer.
foreach(t reply caps proto session)
  add_executable(test_smtp_${t} ${CMAKE_CURRENT_LIST_DIR}/test_smtp_${t}.c)
  target_link_libraries(test_smtp_${t} PRIVATE mailroom_smtp mailroom_common PkgConfig::CMOCKA)
  set_target_properties(test_smtp_${t} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  add_test(NAME test_smtp_${t} COMMAND test_smtp_${t})
  set_tests_properties(test_smtp_${t} PROPERTIES LABELS unit)
endforeach()

# webhook/ (mailroom-webhook's core, without its main, and the library's objects it
# calls), and common/opttable.c with it
foreach(t test_webhook_config test_webhook_retry)
  add_executable(${t} ${CMAKE_CURRENT_LIST_DIR}/${t}.c $<TARGET_OBJECTS:mailroom_lib_objects>)
  add_dependencies(${t} mailroom_lib_objects)
  target_link_libraries(${t} PRIVATE mailroom_webhook_core mailroom_common PkgConfig::CMOCKA)
  set_target_properties(${t} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
  add_test(NAME ${t} COMMAND ${t})
  set_tests_properties(${t} PROPERTIES LABELS unit)
endforeach()

# mailroom-web's rules (web/listen.c, web/auth.c), linked with its objects.
add_executable(test_web_auth ${CMAKE_CURRENT_LIST_DIR}/test_web_auth.c)
target_link_libraries(test_web_auth PRIVATE mailroom_web_core PkgConfig::CMOCKA)
set_target_properties(test_web_auth PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
add_test(NAME test_web_auth COMMAND test_web_auth)
set_tests_properties(test_web_auth PROPERTIES LABELS unit)
