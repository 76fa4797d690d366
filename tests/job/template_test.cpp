// Fallback templates (SPEC §3.4).
#include "src/job/template.hpp"

#include <gtest/gtest.h>

namespace batchq::job {
namespace {

TEST(Template, ReplacesJobIdWithOrWithoutSpaces) {
  EXPECT_EQ(render_template("a <%= job_id %> b <%=job_id%> c <%=  job_id\t%>", "J", ""),
            "a J b J c J");
}

TEST(Template, DoublesQuotesInTheErrorMessage) {
  EXPECT_EQ(render_template("INSERT INTO e VALUES ('<%= job_id %>', '<%= error_message %>')", "J",
                            "relation \"x\" doesn't exist: 'y'"),
            "INSERT INTO e VALUES ('J', 'relation \"x\" doesn''t exist: ''y''')");
}

TEST(Template, LeavesOtherTagsAndBrokenTagsAlone) {
  EXPECT_EQ(render_template("<%= user %> <%= job_id <% job_id %> <%= job_idx %>", "J", "E"),
            "<%= user %> <%= job_id <% job_id %> <%= job_idx %>");
}

TEST(Template, RendersAnEmptyErrorMessageWhenThereIsNone) {
  EXPECT_EQ(render_template("'<%=error_message%>'", "J", ""), "''");
}

} // namespace
} // namespace batchq::job
